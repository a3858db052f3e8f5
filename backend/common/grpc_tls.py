"""TLS of the Stigmer service's gRPC connections: the server's credentials, and the channel its
clients (the service's CLI, the runner's agent-call activity) open, from documented env vars.

Client side, TLS is on when `STIGMER_TLS_CA` (the CA that signed the service's certificate) is
set; `STIGMER_TLS_CLIENT_CERT` and `STIGMER_TLS_CLIENT_KEY` add a client certificate (mTLS).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping, Sequence

import grpc

CA_ENV = "STIGMER_TLS_CA"
CLIENT_CERT_ENV = "STIGMER_TLS_CLIENT_CERT"
CLIENT_KEY_ENV = "STIGMER_TLS_CLIENT_KEY"


class TlsConfigError(ValueError):
    """A TLS file is missing or the settings are incomplete."""


def _read(path: str, what: str) -> bytes:
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as error:
        raise TlsConfigError(f"{what} {path}: {error.strerror or error}") from None


@dataclasses.dataclass(frozen=True)
class ServerTls:
    """PEM files of the server: certificate chain, key, and the client CA that makes it mTLS."""

    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file or self.key_file)

    def credentials(self) -> grpc.ServerCredentials:
        if not (self.cert_file and self.key_file):
            raise TlsConfigError("TLS needs both a certificate and its key")
        pair = (_read(self.key_file, "TLS key"), _read(self.cert_file, "TLS certificate"))
        if not self.client_ca_file:
            return grpc.ssl_server_credentials([pair])
        return grpc.ssl_server_credentials(
            [pair],
            root_certificates=_read(self.client_ca_file, "TLS client CA"),
            # mTLS: a client without a certificate signed by the client CA is refused.
            require_client_auth=True,
        )


@dataclasses.dataclass(frozen=True)
class ClientTls:
    """PEM files of a client: the service's CA (TLS when set) and an optional client pair."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ClientTls:
        return cls(
            ca_file=env.get(CA_ENV, ""),
            cert_file=env.get(CLIENT_CERT_ENV, ""),
            key_file=env.get(CLIENT_KEY_ENV, ""),
        )

    @property
    def enabled(self) -> bool:
        return bool(self.ca_file or self.cert_file or self.key_file)

    def credentials(self) -> grpc.ChannelCredentials:
        if bool(self.cert_file) != bool(self.key_file):
            raise TlsConfigError(
                f"a client certificate needs its key: set both {CLIENT_CERT_ENV} and "
                f"{CLIENT_KEY_ENV}"
            )
        return grpc.ssl_channel_credentials(
            # Without a CA file, the system's roots.
            root_certificates=_read(self.ca_file, "TLS CA") if self.ca_file else None,
            private_key=_read(self.key_file, "TLS client key") if self.key_file else None,
            certificate_chain=(
                _read(self.cert_file, "TLS client certificate") if self.cert_file else None
            ),
        )

    def channel(
        self,
        endpoint: str,
        interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
    ) -> grpc.aio.Channel:
        """A channel to `endpoint`: TLS when configured, else plaintext."""
        if self.enabled:
            return grpc.aio.secure_channel(endpoint, self.credentials(), interceptors=interceptors)
        return grpc.aio.insecure_channel(endpoint, interceptors=interceptors)
