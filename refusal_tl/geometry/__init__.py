"""Value objects of refusal geometry: a direction (and, with the cones, a cone basis)."""

from refusal_tl.geometry.cone import RefusalCone
from refusal_tl.geometry.direction import RefusalDirection

__all__ = ["RefusalCone", "RefusalDirection"]
