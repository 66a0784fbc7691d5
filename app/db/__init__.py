"""Database: typed tables, engine and sessions, migrations."""
