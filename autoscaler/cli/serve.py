"""``autoscaler serve`` (the External Metrics API server) and ``autoscaler certs``.

``serve --values FILE.json`` serves static values (development, demos, tests); the
controller (``autoscaler run``) embeds the same server with its live store instead.
Settings are built here once and passed down; bad flags or files become one error line
and exit status 2 (``autoscaler.cli.main``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from models.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        values: Annotated[
            Path | None,
            typer.Option(help='Static values JSON file ({"metrics": [...]}); see docs/api.md.'),
        ] = None,
        bind: Annotated[str, typer.Option(help="HOST:PORT to listen on.")] = "0.0.0.0:6443",
        insecure: Annotated[
            bool, typer.Option(help="Plain HTTP, no auth; loopback binds only. For development.")
        ] = False,
        tls_cert: Annotated[Path | None, typer.Option(help="PEM serving certificate.")] = None,
        tls_key: Annotated[Path | None, typer.Option(help="PEM serving key.")] = None,
        requestheader_client_ca: Annotated[
            Path | None, typer.Option(help="PEM CA of kube-apiserver's front-proxy client cert.")
        ] = None,
        requestheader_allowed_names: Annotated[
            str, typer.Option(help="Comma-separated allowed front-proxy CNs (empty = any).")
        ] = "",
        auth_mode: Annotated[
            str, typer.Option(help="delegated (TokenReview + SAR) or front-proxy-only.")
        ] = "delegated",
        kubeconfig: Annotated[
            Path | None, typer.Option(help="kubeconfig for TokenReview/SAR (default: in-cluster).")
        ] = None,
        max_age: Annotated[
            float, typer.Option(help="Seconds after which a value is stale and not served.")
        ] = 120.0,
        keda_bind: Annotated[
            str | None, typer.Option(help="HOST:PORT for the KEDA external-scaler gRPC service.")
        ] = None,
        keda_client_ca: Annotated[
            Path | None, typer.Option(help="PEM CA of KEDA's client certs (mutual TLS).")
        ] = None,
    ) -> None:
        """Serve external.metrics.k8s.io/v1beta1 (and optionally the KEDA scaler) from values."""
        from autoscaler.api.auth import Authenticator, kube_reviewer
        from autoscaler.api.server import create_app, run_server
        from autoscaler.api.settings import ApiSettings
        from autoscaler.api.static import StaticPublisher, load_values_file
        from autoscaler.clock import WallClock
        from autoscaler.store import DecisionStore

        if auth_mode not in ("delegated", "front-proxy-only"):
            raise InputError(
                "--auth-mode", f"unknown mode {auth_mode!r}", "delegated or front-proxy-only"
            )
        if values is None:
            raise InputError(
                "--values",
                "serve needs a values file",
                "the controller serves live decisions with `autoscaler run`",
            )
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        settings = ApiSettings(
            bind=bind,
            insecure=insecure,
            tls_cert=tls_cert,
            tls_key=tls_key,
            requestheader_client_ca=requestheader_client_ca,
            requestheader_allowed_names=[
                n.strip() for n in requestheader_allowed_names.split(",") if n.strip()
            ],
            auth_mode=auth_mode,
            max_age_seconds=max_age,
            keda_bind=keda_bind,
            keda_client_ca=keda_client_ca,
        )
        static = load_values_file(values)
        clock = WallClock()
        store = DecisionStore()
        publisher = StaticPublisher(
            static, store, clock, refresh_seconds=min(15.0, max_age / 4)
        ).start()
        auth = None
        if not settings.insecure:
            reviewer = kube_reviewer(kubeconfig) if auth_mode == "delegated" else None
            auth = Authenticator(settings, reviewer, clock.now)
        keda = None
        if settings.keda_bind is not None:
            from autoscaler.api.keda.scaler import start_keda_server

            keda = start_keda_server(store, settings, clock)
        try:
            run_server(create_app(store, settings, auth, clock), settings)
        finally:
            publisher.stop()
            if keda is not None:
                keda.stop(grace=1.0)

    @app.command()
    def certs(
        out_dir: Annotated[Path, typer.Option(help="Directory for tls.crt and tls.key.")] = Path(
            "certs"
        ),
        service: Annotated[
            str, typer.Option(help="Service name (for the SAN <svc>.<ns>.svc).")
        ] = "autoscaler-api",
        namespace: Annotated[
            str, typer.Option(help="Namespace of the service.")
        ] = "autoscaler-system",
        days: Annotated[int, typer.Option(min=1, max=3650, help="Validity in days.")] = 365,
    ) -> None:
        """Write a self-signed serving certificate and key for development."""
        from autoscaler.certs import default_sans, self_signed

        sans = default_sans(service, namespace)
        pair = self_signed(f"{service}.{namespace}.svc", sans, days)
        cert_path, key_path = out_dir / "tls.crt", out_dir / "tls.key"
        pair.write(cert_path, key_path)
        typer.echo(
            f"wrote {cert_path} and {key_path} (self-signed, {days} days; SANs: {', '.join(sans)})"
        )
