"""The six tasks. Importing this package registers each one (and the project's pipeline tags)."""
from tasks import text_classification  # noqa: F401  (registers "text_classification")
