"""GET /docs (Swagger UI) and /redoc (ReDoc), their JavaScript and CSS served by the
server itself from the fastapi-offline package: FastAPI's own pages load them from a
CDN, which leaves a blank page on a TPU VM or a cluster without internet access.
"""

import importlib.resources

from fastapi import Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

ASSETS_URL = '/docs-assets'


def assets_dir():
  """The folder of Swagger UI's and ReDoc's files in the installed fastapi-offline."""
  return str(importlib.resources.files('fastapi_offline') / 'static')


def add(app):
  """Adds the two pages and their files to `app` (made with docs_url=None, redoc_url=None)."""
  app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name='docs-assets')

  @app.get('/docs', include_in_schema=False)
  async def swagger(request: Request):
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=root + app.openapi_url, title=f'{app.title}: API',
        swagger_js_url=f'{root}{ASSETS_URL}/swagger-ui-bundle.js',
        swagger_css_url=f'{root}{ASSETS_URL}/swagger-ui.css',
        swagger_favicon_url=f'{root}{ASSETS_URL}/favicon.png',
        # The validator badge would fetch an image from swagger.io: nothing leaves.
        swagger_ui_parameters={'validatorUrl': None})

  @app.get('/redoc', include_in_schema=False)
  async def redoc(request: Request):
    root = _root(request)
    return get_redoc_html(
        openapi_url=root + app.openapi_url, title=f'{app.title}: API',
        redoc_js_url=f'{root}{ASSETS_URL}/redoc.standalone.js',
        redoc_favicon_url=f'{root}{ASSETS_URL}/favicon.png', with_google_fonts=False)


def _root(request):
  """The prefix a proxy serves the app under (uvicorn --root-path), as FastAPI's pages."""
  return request.scope.get('root_path', '').rstrip('/')
