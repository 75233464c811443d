// Swagger UI for kernelpad's own API description (a file, not inline, for a strict CSP).
window.ui = SwaggerUIBundle({
  url: document.documentElement.dataset.spec,
  dom_id: "#swagger-ui",
  deepLinking: true,
});
