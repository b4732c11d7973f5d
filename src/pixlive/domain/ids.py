"""Charge ids: unguessable, and valid as an API Pix txid."""

import re
import secrets
import string

ALPHABET = string.ascii_letters + string.digits
CHARGE_ID_LENGTH = 25  # 62**25 is about 2**148
_CHARGE_ID = re.compile(r"^[A-Za-z0-9]{25}$")
_END_TO_END_ID = re.compile(r"^E[A-Za-z0-9]{31}$")


def new_charge_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CHARGE_ID_LENGTH))


def is_charge_id(text: str) -> bool:
    return _CHARGE_ID.fullmatch(text) is not None


def is_end_to_end_id(text: str) -> bool:
    return _END_TO_END_ID.fullmatch(text) is not None
