"""Run the runtime on a Ray cluster: `predict_with_ray` writes what `yolor-deploy predict` writes, computed by a
pool of actors in resumable shards. Above `runtime`; imports Ray only when a run starts, never torch."""
from .ray_predict import RayPredictResult, predict_with_ray, resolve_items

__all__ = ["RayPredictResult", "predict_with_ray", "resolve_items"]
