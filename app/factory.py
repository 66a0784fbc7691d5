"""The Flask application factory. Reads like a table of contents; nothing binds at import."""

from __future__ import annotations

from flask import Flask, g, request

from app.api.json_provider import OrjsonProvider
from app.appstate import AppState
from app.config import Settings, load_settings, load_webhook_settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__, static_folder=None)
    app.json = OrjsonProvider(app)
    register_extensions(app, settings)
    register_logging(app)
    register_auth(app)
    register_blueprints(app)
    register_errorhandlers(app)
    return app


def register_extensions(app: Flask, settings: Settings) -> None:
    # A longer body is a 413 while it is read, even one sent without a Content-Length.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    load_webhook_settings()  # a bad WEBHOOK_* value stops the start, naming the variable
    app.extensions["trainyard"] = AppState.from_settings(settings)


def register_logging(app: Flask) -> None:
    from app.observability import bind_log_context, configure_logging, reset_log_context

    configure_logging()

    @app.before_request
    def _bind_model_uuid() -> None:  # log lines of a request about a model carry its uuid
        uid = (request.view_args or {}).get("model_uuid")
        if uid:
            g.log_context_token = bind_log_context(model_uuid=uid)

    @app.teardown_request
    def _unbind(_: BaseException | None) -> None:
        token = g.pop("log_context_token", None)
        if token is not None:
            reset_log_context(token)


def register_auth(app: Flask) -> None:
    from app.api.auth import guard_host, guard_writes

    app.before_request(guard_host)
    app.before_request(guard_writes)


def register_blueprints(app: Flask) -> None:
    from app.api.compare import bp as compare_bp
    from app.api.docs import bp as docs_bp
    from app.api.health import bp as health_bp
    from app.api.metrics import bp as metrics_bp
    from app.api.models import bp as models_bp
    from app.api.nodes import bp as nodes_bp
    from app.api.prom import bp as prom_bp
    from app.api.results import bp as results_bp
    from app.api.train import bp as train_bp
    from app.api.webhooks import bp as webhooks_bp
    from app.web import bp as web_bp

    for blueprint in (
        models_bp,
        compare_bp,
        metrics_bp,
        train_bp,
        health_bp,
        docs_bp,
        prom_bp,
        results_bp,
        nodes_bp,
        webhooks_bp,
        web_bp,
    ):
        app.register_blueprint(blueprint)


def register_errorhandlers(app: Flask) -> None:
    from app.api.envelope import register_error_handlers

    register_error_handlers(app)
