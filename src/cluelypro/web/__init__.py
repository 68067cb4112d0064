"""`cluelypro serve`: the web dashboard and the browser client (issue 11)."""
