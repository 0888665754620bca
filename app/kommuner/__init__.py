"""The municipalities of Norway per year (SSB classification 131): the lists the product ships,
and reading SSB's CSV export."""
