"""Re-export of the error tree (defined in the leaf package `ontology`)."""

from ontology.errors import *  # noqa: F401,F403
from ontology.errors import JourneyGraphError  # noqa: F401
