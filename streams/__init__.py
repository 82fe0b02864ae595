"""crm-triggers: streaming engine deciding when and whether to contact each customer."""

__version__ = "0.1.0"
