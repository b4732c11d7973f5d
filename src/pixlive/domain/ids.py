"""Charge ids: unguessable, and valid as an API Pix txid."""

import re
import secrets
import string

ALPHABET = string.ascii_letters + string.digits
CHARGE_ID_LENGTH = 25  # 62**25 is about 2**148
# A charge at the PSP has its cob's txid as id, and the API Pix wants 26 to 35 characters.
COB_ID_LENGTH = 30
# Exactly the two lengths that are issued: any other is refused as malformed before a lookup.
_CHARGE_ID = re.compile(r"^(?:[A-Za-z0-9]{25}|[A-Za-z0-9]{30})$")


def new_charge_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CHARGE_ID_LENGTH))


def new_cob_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(COB_ID_LENGTH))


def cob_id_from(seed: bytes) -> str:
    """A cob id drawn from 32+ bytes of a keyed hash (so that a retried create names the
    same cob), as unguessable as the key that made the hash."""
    number = int.from_bytes(seed, "big")
    chars = []
    for _ in range(COB_ID_LENGTH):
        number, index = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[index])
    return "".join(chars)


def is_charge_id(text: str) -> bool:
    return _CHARGE_ID.fullmatch(text) is not None
