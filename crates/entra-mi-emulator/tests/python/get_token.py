"""Gets one token with azure-identity's ManagedIdentityCredential and prints it as JSON.

Usage: get_token.py <scope> [<client id>]

The credential finds its source from the environment exactly as on Azure
(IDENTITY_ENDPOINT + IDENTITY_HEADER for App Service, AZURE_POD_IDENTITY_AUTHORITY_HOST
for IMDS). Prints {"token": ..., "expires_on": ...} on stdout; exits non-zero with the
error on stderr otherwise.
"""
import json
import sys

from azure.identity import ManagedIdentityCredential


def main() -> int:
    scope = sys.argv[1]
    client_id = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    credential = ManagedIdentityCredential(client_id=client_id)
    try:
        token = credential.get_token(scope)
    except Exception as e:  # report anything, the Rust test shows it
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        credential.close()
    print(json.dumps({"token": token.token, "expires_on": token.expires_on}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
