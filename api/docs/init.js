// Starts Swagger UI on the API's own OpenAPI document. A file of its own (not inline) so that the page's
// Content-Security-Policy can allow scripts from 'self' only.
"use strict";
(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: new URL(root.dataset.openapiUrl, document.baseURI).href, // relative: works behind a path prefix too
    domNode: root,
    deepLinking: true,
    validatorUrl: null, // the default asks a validator on another host
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
  });
})();
