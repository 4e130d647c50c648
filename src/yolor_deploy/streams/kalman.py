"""A constant-velocity Kalman filter on a box's centre and size (cx, cy, w, h), noise scaled by the box
size (as in SORT / ByteTrack): state [cx, cy, w, h, vcx, vcy, vw, vh]."""
from __future__ import annotations

import numpy as np

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)
POS_STD, VEL_STD = 1.0 / 20, 1.0 / 160


class BoxKalman:
    def __init__(self, cxcywh: np.ndarray):
        self.x = np.r_[cxcywh.astype(np.float64), np.zeros(4)]
        s = np.maximum(cxcywh[[2, 3, 2, 3]], 1.0)
        self.P = np.diag(np.r_[2 * POS_STD * s, 10 * VEL_STD * s] ** 2)

    def predict(self) -> np.ndarray:
        s = np.maximum(self.x[[2, 3, 2, 3]], 1.0)
        Q = np.diag(np.r_[POS_STD * s, VEL_STD * s] ** 2)
        self.x = _F @ self.x
        self.P = _F @ self.P @ _F.T + Q
        return self.x[:4]

    def update(self, cxcywh: np.ndarray) -> np.ndarray:
        s = np.maximum(self.x[[2, 3, 2, 3]], 1.0)
        R = np.diag((POS_STD * s) ** 2)
        S = _H @ self.P @ _H.T + R
        K = np.linalg.solve(S, _H @ self.P).T
        self.x = self.x + K @ (cxcywh - _H @ self.x)
        self.P = (np.eye(8) - K @ _H) @ self.P
        return self.x[:4]
