"""The face embedder's torch port of dlib's ResNet (persons/dlib_resnet.py, persons/embedder.py).

- the parser on a tiny net spelled out byte by byte from dlib's serialization format (no
  serializer of ours involved), and its one error type on truncated, foreign and wrong-shaped input;
- parity on real faces: the port's 128-d vectors against dlib's own ``compute_face_descriptor``
  (which aligns the chip itself from the same landmarks), within 1e-5 per value and per pairwise
  distance (measured: <= 5e-7 on the 30 faces); any one-line slip in the network (a mean, the channel order,
  a padding, a relu, the zero-padded shortcut) moves the vectors by far more;
- the embedder's API: backend choice and fallback, ``name``, ``embed_many``.
"""
from __future__ import annotations

import struct
import sys

import numpy as np
import pytest

from emotion_perception.persons.dlib_resnet import (
    ARCHITECTURE, DlibFaceResNet, DlibModelFormatError, parse_dlib_net,
)
from emotion_perception.types import Box

TOLERANCE = 1e-5  # max abs difference per vector value and per pairwise distance

# ------------------------------------------------------------------ the parser, on bytes spelled by hand
# dlib's integers: a control byte (bit 7 = minus, low 4 bits = byte count), then little-endian bytes.
# Floats: mantissa, then exponent, both such integers. Strings: length, bytes. Bools: '0' / '1'.

CON_VALUES = [0.5, -1.0, 2.0, 0.25, 0.0, -0.125,  # filters, 2 x 3 x 1 x 1
              3.0, -4.0]  # biases


def _tiny_net() -> bytes:
    """loss_metric_2 over one con_4 (2 filters, 1x1, over RGB) over input_rgb_image_sized<150>."""
    empty_tensor = "01 02  01 00 01 00 01 00 01 00"  # version 2, shape 0 x 0 x 0 x 0, no data
    one = "01 80 81 07"  # 1.0 = 128 * 2**-7 (as dlib writes it: low zero bytes shifted off)
    pieces = [
        "01 01",  # add_loss_layer version 1
        "01 0d" + b"loss_metric_2".hex(),
        "03 0a d7 a3 81 1c",  # margin: 0xa3d70a * 2**-28 = 0.04 (3-byte mantissa, negative exponent)
        "01 80 81 01",  # dist_thresh: 128 * 2**-1 = 64
        "01 03",  # the innermost add_layer, version 3
        "01 15" + b"input_rgb_image_sized".hex(),
        "01 80 01 00",  # avg_red 128 * 2**0
        "01 80 81 01",  # avg_green 64
        "01 80 81 02",  # avg_blue 32
        "01 96 01 96",  # 150 rows, 150 columns
        "01 05" + b"con_4".hex(),
        "01 02  01 08 01 01 01 01 01 01",  # params tensor: version 2, 8 x 1 x 1 x 1 ...
        struct.pack("<8f", *CON_VALUES).hex(),  # ... as little-endian IEEE float32
        "01 02",  # num_filters 2
        "01 01 01 01",  # 1 x 1 window
        "01 01 01 01",  # stride 1, 1
        "01 00 01 00",  # padding 0, 0
        "01 01  01 02 01 03 01 01 01 01",  # filters: alias tensor version 1, 2 x 3 x 1 x 1
        "01 01  01 01 01 02 01 01 01 01",  # biases: 1 x 2 x 1 x 1
        one, one, one, "01 00 01 00",  # learning-rate / weight-decay multipliers (1, 1, 1, 0)
        b"100".hex(),  # this_layer_setup_called, gradient_input_is_stale, outputs disabled
        empty_tensor, empty_tensor, empty_tensor,  # x_grad, cached_output, grad_final
        "01 01",  # sample_expansion_factor 1
    ]
    return bytes.fromhex("".join(pieces).replace(" ", ""))


def test_parser_reads_a_hand_built_net():
    input_layer, con, loss = parse_dlib_net(_tiny_net())
    assert input_layer.kind == "input" and con.kind == "con" and loss.kind == "loss_metric"
    assert input_layer.values["mean_rgb"].tolist() == [128.0, 64.0, 32.0]
    assert input_layer.values["size"] == (150, 150)
    assert loss.values["margin"] == pytest.approx(0.04, abs=1e-8) and loss.values["distance_threshold"] == 64.0
    assert con.values["weight"].shape == (2, 3, 1, 1)
    assert con.values["weight"].ravel().tolist() == CON_VALUES[:6]
    assert con.values["bias"].tolist() == CON_VALUES[6:]
    assert (con.values["num_filters"], con.values["nr"], con.values["stride_y"], con.values["padding_y"]) == (2, 1, 1, 0)


def test_every_truncation_and_trailing_bytes_raise_the_one_error():
    data = _tiny_net()
    for end in range(len(data)):
        with pytest.raises(DlibModelFormatError):
            parse_dlib_net(data[:end])
    with pytest.raises(DlibModelFormatError, match="truncated"):
        parse_dlib_net(data[:-5])
    with pytest.raises(DlibModelFormatError, match="end of the file"):
        parse_dlib_net(data + b"\x01\x00")


def test_foreign_bytes_say_what_was_expected():
    with pytest.raises(DlibModelFormatError, match="add_loss_layer version 1"):
        parse_dlib_net(b"\x89PNG\r\n\x1a\n" + bytes(64))
    other_loss = _tiny_net().replace(b"\x01\x0dloss_metric_2", b"\x01\x0dloss_mmod_xyz")
    with pytest.raises(DlibModelFormatError, match=r"loss_metric_2.*found 'loss_mmod_xyz'"):
        parse_dlib_net(other_loss)


def test_a_valid_net_of_another_architecture_is_refused():
    with pytest.raises(DlibModelFormatError, match="not dlib's face-recognition ResNet"):
        DlibFaceResNet(parse_dlib_net(_tiny_net()))


# ------------------------------------------------------------------ the real model file

@pytest.fixture(scope="module")
def resnet_path():
    from emotion_perception.models.weights import installed_package_file
    from emotion_perception.persons.embedder import RESNET_PACKAGE_FILE

    path = installed_package_file(RESNET_PACKAGE_FILE)
    if path is None:
        pytest.skip("face-recognition-models is not installed (pip install --no-deps face-recognition-models==0.3.0)")
    return path


@pytest.fixture(scope="module")
def real_layers(resnet_path):
    return parse_dlib_net(resnet_path.read_bytes())


def test_real_file_is_the_example_architecture(real_layers):
    assert [layer.kind for layer in real_layers] == [kind for kind, _, _ in ARCHITECTURE]
    cons = [layer for layer in real_layers if layer.kind == "con"]
    assert len(cons) == 29 and sum(layer.kind == "relu" for layer in real_layers) == 29
    # dlib's defaults: no padding at stride 2, half the window at stride 1
    assert {(c.values["stride_y"], c.values["padding_y"]) for c in cons} == {(2, 0), (1, 1)}
    assert real_layers[0].values["mean_rgb"].tolist() == pytest.approx([122.782, 117.001, 104.298], abs=1e-3)


def test_a_wrong_padding_in_the_file_is_refused(real_layers):
    import copy

    layers = copy.deepcopy(real_layers)
    con = next(i for i, layer in enumerate(layers) if layer.kind == "con" and layer.values["stride_y"] == 1)
    layers[con].values["padding_y"] = layers[con].values["padding_x"] = 0
    with pytest.raises(DlibModelFormatError, match=f"layer {con}: expected con of .* padding 1"):
        DlibFaceResNet(layers)


def test_truncated_and_foreign_model_files(resnet_path, tmp_path):
    from emotion_perception.persons.dlib_resnet import load_dlib_face_resnet

    cut = tmp_path / "cut.dat"
    cut.write_bytes(resnet_path.read_bytes()[: 5_000_000])
    with pytest.raises(DlibModelFormatError, match=r"cut\.dat: .*truncated"):
        load_dlib_face_resnet(cut)
    landmarks = resnet_path.with_name("shape_predictor_5_face_landmarks.dat")
    if landmarks.is_file():
        with pytest.raises(DlibModelFormatError, match="expected"):
            load_dlib_face_resnet(landmarks)


# ------------------------------------------------------------------ parity with dlib on real faces

@pytest.fixture(scope="module")
def embedders():
    from emotion_perception.persons.embedder import DlibFaceEmbedder

    try:
        return DlibFaceEmbedder("torch"), DlibFaceEmbedder("dlib")
    except (ImportError, FileNotFoundError) as err:
        pytest.skip(f"needs dlib-bin and face-recognition-models: {err}")


@pytest.fixture(scope="module")
def real_faces(embedders, shared_data):
    """(image, boxes) of every photo in ../shared/data/images/*.jpg (faces found by dlib's HOG
    detector) and ../shared/data/eval/images (the labelled boxes): 30 faces of 22 photos."""
    from emotion_perception.evaluation.evalset import load_image_items, read_image

    dlib = embedders[0]._dlib
    hog = dlib.get_frontal_face_detector()
    faces = []
    for path in sorted((shared_data / "images").glob("*.jpg")):
        image = read_image(path)
        boxes = [Box(r.left(), r.top(), r.width(), r.height()) for r in hog(image, 1)]
        if boxes:
            faces.append((image, boxes))
    for item in load_image_items(shared_data / "eval" / "images" / "labels.csv"):
        faces.append((read_image(item.path), [label.box for label in item.labels[0]]))
    assert sum(len(boxes) for _, boxes in faces) >= 30
    return faces


def _dlib_reference(embedder, image, box) -> np.ndarray:
    """dlib's own path: landmarks, then compute_face_descriptor(img, shape) aligns the 150x150
    chip (padding 0.25) itself and runs dlib's ResNet."""
    dlib = embedder._dlib
    rect = dlib.rectangle(int(box.x), int(box.y), int(box.x + box.w) - 1, int(box.y + box.h) - 1)
    image = np.ascontiguousarray(image)
    shape = embedder._landmarks(image, rect)
    return np.asarray(embedder._resnet.compute_face_descriptor(image, shape), np.float32)


def test_torch_port_equals_dlib_on_real_faces(embedders, real_faces):
    port, dlib_side = embedders
    assert (port.name, dlib_side.name) == ("dlib_resnet_v1_torch", "dlib_resnet_v1")
    ours, theirs = [], []
    for image, boxes in real_faces:
        batch = port.embed_many(image, boxes)
        for box, from_batch in zip(boxes, batch):
            single = port.embed(image, box)
            assert single.shape == (128,) and single.dtype == np.float32
            assert np.abs(from_batch - single).max() < TOLERANCE  # one forward for the frame = one per face
            ours.append(single)
            theirs.append(_dlib_reference(dlib_side, image, box))
    ours, theirs = np.stack(ours), np.stack(theirs)
    assert np.abs(ours - theirs).max() < TOLERANCE
    distances = [np.linalg.norm(v[:, None] - v[None], axis=-1) for v in (ours, theirs)]
    assert np.abs(distances[0] - distances[1]).max() < TOLERANCE
    # the comparison is not vacuous: same-person and different-person distances both occur
    assert distances[1][np.triu_indices(len(theirs), 1)].min() < 0.5 < distances[1].max()


def test_dlib_backend_batch_equals_its_single_faces(embedders, real_faces):
    _, dlib_side = embedders
    image, boxes = max(real_faces, key=lambda f: len(f[1]))  # the group selfie
    assert len(boxes) >= 4
    batch = dlib_side.embed_many(image, boxes)
    for box, vector in zip(boxes, batch):
        assert np.abs(vector - dlib_side.embed(image, box)).max() < TOLERANCE


def test_embed_many_keeps_the_order_and_gives_none_for_a_tiny_box(embedders, real_faces):
    port, _ = embedders
    image, boxes = real_faces[-1]
    out = port.embed_many(image, [Box(0, 0, 1, 1), boxes[0]])
    assert out[0] is None and np.abs(out[1] - port.embed(image, boxes[0])).max() < TOLERANCE
    assert port.embed_many(image, []) == []


# ------------------------------------------------------------------ backend choice

def test_auto_uses_the_port_and_falls_back_to_dlib(embedders, monkeypatch, caplog):
    from emotion_perception.persons import dlib_resnet, embedder as embedder_module
    from emotion_perception.persons.embedder import DlibFaceEmbedder, create_embedder

    found, why = create_embedder()
    assert why == "" and found.name == "dlib_resnet_v1_torch"

    def unreadable(path):
        raise DlibModelFormatError(f"{path}: expected something else")

    monkeypatch.setattr(dlib_resnet, "load_dlib_face_resnet", unreadable)
    with caplog.at_level("WARNING", logger=embedder_module.__name__):
        assert DlibFaceEmbedder().name == "dlib_resnet_v1"
    assert "cannot read the model file" in caplog.text
    with pytest.raises(DlibModelFormatError):
        DlibFaceEmbedder("torch")

    monkeypatch.setitem(sys.modules, "emotion_perception.persons.dlib_resnet", None)  # torch port not importable
    assert DlibFaceEmbedder().name == "dlib_resnet_v1"
    with pytest.raises(ImportError):
        DlibFaceEmbedder("torch")
    with pytest.raises(ValueError, match="backend"):
        DlibFaceEmbedder("onnx")
