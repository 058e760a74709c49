"""python-pkcs11 (0.10) against libkeyward_pkcs11.so, one group of checks per run:
`module_test.py sign|cipher|misc|errors|isolation`, with the venv's python.

Run by tests/pkcs11_e2e/python.rs, which sets PKCS11_MODULE, KEYWARD_PKCS11_CONF, PIN and each
group's own variables (see the group's module). Each check prints `ok NAME` or `FAIL NAME: ...`
and a traceback; one failure does not stop the group; the exit status is 1 when any failed.
"""

import checks_cipher
import checks_misc
import checks_sign
from p11util import main

if __name__ == "__main__":
    main({
        "sign": checks_sign.run,
        "cipher": checks_cipher.run,
        "misc": checks_misc.run,
        "errors": checks_misc.run_errors,
        "isolation": checks_misc.run_isolation,
    })
