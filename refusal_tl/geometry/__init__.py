"""Value objects of refusal geometry: a direction and a cone basis, with how they were found."""

from refusal_tl.geometry.cone import RefusalCone
from refusal_tl.geometry.direction import RefusalDirection
from refusal_tl.geometry.provenance import Provenance

__all__ = ["Provenance", "RefusalCone", "RefusalDirection"]
