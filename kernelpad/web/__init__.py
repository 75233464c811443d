"""Tornado handlers (REST, WebSocket), the OpenAPI document and the browser's assets."""
