import time, numpy as np, cv2
from benchmarks.bench_overlay import *
from lpn_core import draw
image, poses = frame(STREET,(1280,720)), crowd(1280,720,10)
def t(f,n=300):
    for _ in range(20): f()
    xs=[]
    for _ in range(n):
        s=time.thread_time(); f(); xs.append(time.thread_time()-s)
    return np.median(xs)*1e3
c=image.copy()
print("full", t(lambda: draw.draw_stats(draw.draw_poses(image,poses),24.0,TIMES_MS,10,weights_label="lpn50 x")))
print("poses all", t(lambda: draw.draw_poses(image,poses)))
print("poses no boxes/ids", t(lambda: draw.draw_poses(image,poses,show_boxes=False,show_ids=False)))
print("poses no ids", t(lambda: draw.draw_poses(image,poses,show_ids=False)))
print("stats", t(lambda: draw.draw_stats(c,24.0,TIMES_MS,10,weights_label="lpn50 x")))
print("copy", t(lambda: image.copy()))
print("empty poses", t(lambda: draw.draw_poses(image,[])))
