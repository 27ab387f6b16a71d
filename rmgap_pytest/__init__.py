"""rmgap-pytest: a regression gate for reward models on RMGAP."""
__version__ = "0.1.0"
