"""emotion_perception: an ament_python package that is also pip-installable.

colcon uses the data_files below to install the ament index marker, package.xml, launch/ and
config/ into share/emotion_perception; a pip wheel carries the same files (under the environment's
share/ directory), so `pip install` and `colcon build` ship one layout.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "emotion_perception"

CORE = [
    "numpy>=1.24",
    "opencv-python-headless>=4.8,<5",  # 5.x dropped CascadeClassifier (our CPU face detector)
    "PyYAML>=6",
    "torch>=2.1",
    "torchvision>=0.16",
    "open_clip_torch>=2.24",
    "h5py>=3.8",  # reads the FER2013 mini-Xception weights without TensorFlow
    "rosbags>=0.10",  # rosbag2 reading/writing and CDR without ROS
    "apsw>=3.40",  # rosbags reads sqlite3 bags through it; bags.py catches its errors on damaged bags
    "tqdm>=4.60",
    "matplotlib>=3.7",
    # the LLM bridge's HTTP client (llm/backends.py): every evaluation replays its estimates through
    # the bridge's context tracker ("what the LLM hears"), so the offline tools import the llm package
    "httpx>=0.27",
]

EXTRAS = {
    # What face-alignment's SFD / BlazeFace detectors need at run time. face-alignment itself is
    # installed with `pip install --no-deps face-alignment`: it declares the full opencv-python,
    # which would shadow the headless wheel and needs libGL on the robot.
    # dlib's detectors: dlib-bin is a prebuilt dlib (no compile, no dependencies);
    # face-recognition-models ships dlib's CNN face detector file and the face-recognition and
    # 5-point landmark models of re-identification (persons/; no dependencies). MTCNN's
    # weights come from `pip install --no-deps facenet-pytorch==2.6.0` (it pins torch < 2.3).
    "detectors": ["numba>=0.58", "scipy>=1.10", "dlib-bin>=20.0.1", "face-recognition-models==0.3.0"],
    # LLM bridge backends: Ollama's client (the OpenAI-compatible backend uses httpx, a core dependency).
    "llm": ["ollama>=0.4"],
    # The README's main job builds its recording from scikit-image's bundled astronaut photo.
    "demo": ["scikit-image>=0.21"],
}
EXTRAS["test"] = sorted(
    set(EXTRAS["detectors"] + EXTRAS["llm"] + EXTRAS["demo"])
    | {"pytest>=7", "hypothesis>=6.100", "catkin_pkg>=0.5", "build>=1.0"}
    # colcon in the test venv: tests/ros builds the package with it as the README tells venv users
    # (its Python writes the node shebangs; colcon-core keeps setuptools < 80 for --symlink-install)
    | {"colcon-core>=0.21", "colcon-ros>=0.5", "colcon-package-selection>=0.2"}
)
EXTRAS["all"] = sorted({dep for deps in EXTRAS.values() for dep in deps})

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Scene-aware facial emotion perception for robots (ROS 2), with an LLM bridge",
    packages=find_packages(exclude=["test", "tests"]),
    package_data={
        PACKAGE: [
            "model_profiles/*.yaml",
            "models/configs/*.json",
            "training/configs/*.yaml",
            # emotion_msgs definitions (a link to ../emotion_msgs), for bags and CDR without ROS.
            "msg_definitions/msg/*.msg",
            "msg_definitions/srv/*.srv",
        ]
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require=EXTRAS,
    zip_safe=False,
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            # Offline tools (no ROS needed).
            "emotion-perception = emotion_perception.cli:main",
            "emotion-train = emotion_perception.training.cli:train_main",
            "emotion-evaluate = emotion_perception.training.cli:evaluate_main",
            "emotion-fetch = emotion_perception.models.fetch:main",
            # ROS 2 nodes (`ros2 run emotion_perception <name>`); ros/executables.py says why they
            # do not point at the node modules' main directly.
            "perception_node = emotion_perception.ros.executables:perception_node",
            "llm_bridge = emotion_perception.ros.executables:llm_bridge",
            "eval_node = emotion_perception.ros.executables:eval_node",
        ],
    },
)
