"""Run the runtime on a Ray cluster: `predict_with_ray` writes what `yolor-deploy predict` writes, computed by a
pool of actors in resumable shards; `ray_serve.serve_with_ray` (imported on its own: it imports Ray Serve) serves
the HTTP app of `serve/` as a Ray Serve application. Above `runtime` and `serve`; never imports torch."""
from .ray_predict import RayPredictResult, predict_with_ray, resolve_items

__all__ = ["RayPredictResult", "predict_with_ray", "resolve_items"]
