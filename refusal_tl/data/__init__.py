"""Prompt sets: the bundled ones, local files, and the paper's datasets from the Hub."""

from refusal_tl.data.hub import HUB_DATASETS, hub_reachable, load_hub
from refusal_tl.data.prompts import bundled, bundled_records, bundled_split, load_prompts, load_source

__all__ = ["HUB_DATASETS", "bundled", "bundled_records", "bundled_split", "hub_reachable", "load_hub", "load_prompts",
           "load_source"]
