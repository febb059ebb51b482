"""Fuzz Detection2DArray -> crop boxes: usable boxes or a skip reason, never an exception."""

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from pose_kp_ros.geometry.boxes import valid_box
from pose_kp_ros.ros.messages import boxes_from_detection2d_array

BOUNDARY = 'Detection2DArray handling'
OBJECTS = ['driller', 'box_tea']
values = st.floats(-1e4, 1e4) | st.sampled_from(
    [0.0, -0.0, -1.0, np.nan, np.inf, -np.inf, 1e308, -1e308, 1.7e308, 5e-324, 1e-300])
class_ids = st.sampled_from(OBJECTS + ['', 'Driller', 'person', '0', 'driller '])


@st.composite
def detections(draw):
    """Return one Detection2D with 0-3 hypotheses and any box."""
    detection = Detection2D()
    for _ in range(draw(st.integers(0, 3))):
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = draw(class_ids)
        hypothesis.hypothesis.score = draw(values)
        detection.results.append(hypothesis)
    box = detection.bbox
    box.center.position.x, box.center.position.y = draw(values), draw(values)
    box.center.theta = draw(values)
    box.size_x, box.size_y = draw(values), draw(values)
    return detection


@settings(max_examples=400, deadline=None)
@given(items=st.lists(detections(), max_size=6),
       default_object=st.sampled_from([None, 'driller', 'unknown']))
def test_detections_give_finite_boxes_of_known_objects_or_skip_reasons(items, default_object):
    msg = Detection2DArray(detections=items)
    boxes, skipped = boxes_from_detection2d_array(msg, OBJECTS, default_object)
    assert all(isinstance(reason, str) and '\n' not in reason for reason in skipped)
    assert sum(len(b) for b in boxes.values()) + len(skipped) == len(items)
    for name, object_boxes in boxes.items():
        assert name in OBJECTS
        assert object_boxes.shape[1:] == (4,) and np.isfinite(object_boxes).all()
        assert (object_boxes[:, 2] >= object_boxes[:, 0]).all()
        assert (object_boxes[:, 3] >= object_boxes[:, 1]).all()
        for box in object_boxes:  # what the pipeline does next with them must not raise
            valid_box(box, 640, 480)
