// Built from clients/js/src by `npm run build` (flask-sse-resilience); do not edit.
