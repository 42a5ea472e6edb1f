"""HTTP: the aiohttp application, shared error and listing conventions."""
