"""The domain: charges, money, the BR Code, events. Imports nothing outside itself."""
