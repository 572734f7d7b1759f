"""hessdyn: compare optimizers through the geometry of the loss."""

__version__ = "0.1.0"
