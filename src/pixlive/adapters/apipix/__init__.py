"""The API Pix (Banco Central do Brasil) client: the PSP port over HTTPS with mTLS and OAuth2."""
