# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restic's encryption, for tests that write into real repositories.

``seal`` encrypts as restic does (AES-256-CTR, then Poly1305-AES over the ciphertext with
the IV as nonce: restic's design document, "Encryption"). ``cheapen_keys`` re-seals a
repository's key files with small scrypt parameters: restic calibrates them at ``init`` to
about half a second (N=32768, r=8, p=5 here), which every later command pays again to
open the repository, and a test makes hundreds of them. The master key, the data and the
restic binary stay real; restic's own tests lower the parameters the same way
(``TestUseLowSecurityKDFParameters``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

# The cheapest parameters restic accepts (N a power of two above 1).
CHEAP = {"N": 16, "r": 1, "p": 1}


def _mac(mac_k, mac_r, nonce, text):
    """Poly1305-AES: the one-time key is ``r`` and AES_k(nonce)."""
    ecb = Cipher(algorithms.AES(mac_k), modes.ECB()).encryptor()
    return Poly1305.generate_tag(mac_r + ecb.update(nonce) + ecb.finalize(), text)


def seal(encrypt, mac_k, mac_r, plain):
    """``plain`` as restic stores it: IV, ciphertext, MAC."""
    nonce = os.urandom(16)
    encryptor = Cipher(algorithms.AES(encrypt), modes.CTR(nonce)).encryptor()
    text = encryptor.update(plain) + encryptor.finalize()
    return nonce + text + _mac(mac_k, mac_r, nonce, text)


def _user_key(password, salt, params):
    """The key restic derives from the password: (AES key, MAC k, MAC r)."""
    derived = hashlib.scrypt(password.encode(), salt=salt, n=params["N"], r=params["r"],
                             p=params["p"], maxmem=1 << 30, dklen=64)
    return derived[:32], derived[32:48], derived[48:]


def _open(document, password):
    """The master key's JSON sealed in one key file."""
    raw = base64.b64decode(document["data"])
    nonce, text, tag = raw[:16], raw[16:-16], raw[-16:]
    encrypt, mac_k, mac_r = _user_key(password, base64.b64decode(document["salt"]), document)
    if _mac(mac_k, mac_r, nonce, text) != tag:
        raise ValueError("wrong password for this restic key")
    decryptor = Cipher(algorithms.AES(encrypt), modes.CTR(nonce)).decryptor()
    return decryptor.update(text) + decryptor.finalize()


def cheapen_keys(repository, password):
    """Re-seal every key file of ``repository`` (a local path) with ``CHEAP`` parameters,
    named by the hash of its new content as restic names key files."""
    keys = os.path.join(repository, "keys")
    for name in os.listdir(keys):
        path = os.path.join(keys, name)
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        master = _open(document, password)
        salt = os.urandom(64)
        sealed = seal(*_user_key(password, salt, CHEAP), master)
        document.update(CHEAP, salt=base64.b64encode(salt).decode(),
                        data=base64.b64encode(sealed).decode())
        content = json.dumps(document).encode()
        with open(os.path.join(keys, hashlib.sha256(content).hexdigest()), "wb") as handle:
            handle.write(content)
        os.chmod(handle.name, 0o400)
        os.unlink(path)
