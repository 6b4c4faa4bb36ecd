"""trailkeeper: a self-hosted audit log service."""

from trailkeeper.model import Actor, Context, Event, EventIn, Target

__version__ = "0.1.0"

__all__ = ["Actor", "Context", "Event", "EventIn", "Target", "__version__"]
