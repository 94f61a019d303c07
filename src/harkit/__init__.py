"""harkit: Human Activity Recognition from wearable inertial sensors."""

__version__ = "0.1.0"


class HarkitError(Exception):
    """An error a user can act on; the message says what is wrong and what to do."""
