"""`gunicorn wsgi:app`: the API on the database named by IPLEDGER_DATABASE_URL."""
from api import create_app

app = create_app()
