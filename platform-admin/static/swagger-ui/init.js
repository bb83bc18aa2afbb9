// Starts Swagger UI on the OpenAPI document named by #swagger-ui's
// data-url. A file of its own, not an inline script: the page's
// Content-Security-Policy allows scripts from this origin only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-url"),
    domNode: root,
    deepLinking: true,
    // Never hand the document to the public online validator (and never
    // load its badge from another origin).
    validatorUrl: null,
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    // A token typed into "Authorize" is kept only until the tab closes.
    persistAuthorization: false,
  });
})();
