from __future__ import annotations

from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hermes_hub.cli.output import CliError, JsonOption, emit
from hermes_hub.sdk.keys import (
    KeyFileError,
    generate_private_key,
    load_private_key,
    public_key_b64,
    save_private_key,
    sign_b64,
)

app = typer.Typer(help="Ed25519 key pairs for agents.", no_args_is_help=True)

KeyPath = typer.Option(..., "--key", "-k", help="Private key file (PEM).")


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        return load_private_key(path)
    except KeyFileError as exc:
        raise CliError(str(exc)) from exc


@app.command("generate")
def generate(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Where to write the private key (mode 0600)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a key pair: the private key goes to a file, the public key is printed."""
    key = generate_private_key()
    try:
        save_private_key(key, out)
    except KeyFileError as exc:
        raise CliError(str(exc)) from exc
    public = public_key_b64(key)
    emit(
        {"private_key_file": str(out), "public_key": public},
        as_json=as_json,
        human=f"private key written to {out}\npublic key (base64): {public}",
    )


@app.command("public")
def public(key: Path = KeyPath, as_json: bool = JsonOption) -> None:
    """Print the base64 public key of a private key file."""
    value = public_key_b64(_load(key))
    emit({"public_key": value}, as_json=as_json, human=value)


@app.command("sign")
def sign(
    message: str = typer.Argument(..., help="The text to sign, e.g. an enrollment challenge."),
    key: Path = KeyPath,
    as_json: bool = JsonOption,
) -> None:
    """Sign the UTF-8 bytes of MESSAGE; print the base64 signature."""
    signature = sign_b64(_load(key), message)
    emit({"signature": signature}, as_json=as_json, human=signature)
