"""One ``APIRouter`` per resource: ``health``, ``containers``, ``events``."""
