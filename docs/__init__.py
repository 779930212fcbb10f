"""Documentation sources and the tools that generate parts of README.md."""
