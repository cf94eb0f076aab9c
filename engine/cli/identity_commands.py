"""`peerbase identity ...`: TLS identities in the OS keyring."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from engine.cli.common import CLIError, print_json
from engine.tls import SUBJECT_ATTRIBUTES, TLSIdentity

#: Read by `identity import` when --password is not given.
PKCS12_PASSWORD_ENV = "PEERBASE_PKCS12_PASSWORD"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ident = sub.add_parser("identity", help="TLS identities in the OS keyring")
    isub = ident.add_subparsers(dest="identity_command", metavar="ACTION", required=True)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="machine-readable JSON output")

    create = isub.add_parser("create", parents=[as_json], help="create a self-signed identity")
    create.add_argument("label")
    for name in SUBJECT_ATTRIBUTES:
        flag = "--" + name.replace("_", "-")
        create.add_argument(flag, dest=name, required=name == "common_name", metavar="TEXT")
    create.add_argument("--hostname", help="DNS name or IP address for subjectAltName")
    create.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    create.add_argument("--replace", action="store_true", help="overwrite an existing label")
    create.set_defaults(handler=cmd_create)

    imp = isub.add_parser("import", parents=[as_json], help="import a PKCS#12 (.p12/.pfx) file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--label", required=True)
    imp.add_argument("--password", help=f"PKCS#12 password (default: ${PKCS12_PASSWORD_ENV})")
    imp.add_argument("--replace", action="store_true", help="overwrite an existing label")
    imp.set_defaults(handler=cmd_import)

    ls = isub.add_parser("list", parents=[as_json], help="list stored identities")
    ls.set_defaults(handler=cmd_list)

    show = isub.add_parser("show", parents=[as_json], help="show an identity")
    show.add_argument("label")
    show.set_defaults(handler=cmd_show)

    delete = isub.add_parser("delete", help="delete an identity")
    delete.add_argument("label")
    delete.set_defaults(handler=cmd_delete)

    export = isub.add_parser("export-cert", help="write an identity's certificate (for pinning)")
    export.add_argument("label")
    export.add_argument("--out", type=Path, help="file to write (default: stdout)")
    export.add_argument("--der", action="store_true", help="DER instead of PEM (leaf only)")
    export.add_argument("--chain", action="store_true", help="the whole chain (PEM)")
    export.set_defaults(handler=cmd_export_cert)


def describe(identity: TLSIdentity) -> dict[str, Any]:
    return {
        "label": identity.label,
        "subject": identity.subject,
        "fingerprint": identity.fingerprint,
        "short_fingerprint": identity.short_fingerprint,
        "expiration": identity.expiration.isoformat(),
        "expired": identity.is_expired,
        "warning": identity.expiry_warning(),
        "chain_length": len(identity.chain),
    }


def _show(identity: TLSIdentity, as_json: bool) -> None:
    info = describe(identity)
    if as_json:
        print_json(info)
        return
    print(f"label:        {info['label']}")
    subject = ", ".join(f"{k}={v}" for k, v in info["subject"].items())
    print(f"subject:      {subject}")
    print(f"fingerprint:  {info['fingerprint']}")
    print(f"expires:      {info['expiration']}{' (EXPIRED)' if info['expired'] else ''}")
    print(f"chain:        {info['chain_length']} certificate(s)")
    if info["warning"]:
        print(f"warning:      {info['warning']}")


def cmd_create(args: argparse.Namespace) -> int:
    if args.days <= 0:
        raise CLIError("--days must be positive")
    attributes = {k: getattr(args, k) for k in SUBJECT_ATTRIBUTES if getattr(args, k)}
    if args.hostname:
        attributes["hostname"] = args.hostname
    expiration = dt.datetime.now(dt.UTC) + dt.timedelta(days=args.days)
    identity = TLSIdentity.create(args.label, attributes, expiration, replace=args.replace)
    _show(identity, args.json)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise CLIError(f"cannot read {args.file}: {exc.strerror}") from None
    password = args.password if args.password is not None else os.environ.get(PKCS12_PASSWORD_ENV)
    identity = TLSIdentity.import_pkcs12(data, password, args.label, replace=args.replace)
    _show(identity, args.json)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    labels = TLSIdentity.list()
    if args.json:
        print_json([describe(TLSIdentity.get(label)) for label in labels])
    else:
        for label in labels:
            print(label)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _show(TLSIdentity.get(args.label), args.json)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    TLSIdentity.delete(args.label)
    return 0


def cmd_export_cert(args: argparse.Namespace) -> int:
    identity = TLSIdentity.get(args.label)
    if args.der and args.chain:
        raise CLIError("--der writes the leaf only; drop --der or --chain")
    if args.der:
        data = identity.certificate.public_bytes(serialization.Encoding.DER)
    else:
        data = identity.cert_pem(full_chain=args.chain)
    if args.out is None:
        if args.der and sys.stdout.isatty():
            raise CLIError("refusing to write DER to a terminal; use --out FILE")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        try:
            args.out.write_bytes(data)
        except OSError as exc:
            raise CLIError(f"cannot write {args.out}: {exc.strerror}") from None
    return 0
