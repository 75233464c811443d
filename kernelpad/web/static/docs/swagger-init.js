// Swagger UI for kernelpad's own API description (a file, not inline, for a strict CSP).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
});
