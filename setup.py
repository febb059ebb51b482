"""ament_python build of pose_kp_ros (also installable with pip)."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'pose_kp_ros'


def share(folder, pattern='*'):
    """Return a data_files entry installing repo files `folder/pattern` into share/<pkg>/folder."""
    files = [f for f in glob(os.path.join(folder, pattern)) if os.path.isfile(f)]
    return (os.path.join('share', PACKAGE, folder), files)


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        share('launch', '*.launch.py'),
        # what a user runs: the node's parameters, the RViz view and the two example configs
        ('share/' + PACKAGE + '/config', ['config/pose_kp_node.yaml', 'config/pose_kp.rviz',
                                          'config/train_example.yaml',
                                          'config/train_detector_example.yaml']),
        share('objects', '*.yaml'),
    ] + [share(folder) for folder in ['models'] + sorted(glob('models/*'))
         if os.path.isdir(folder)],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='pose_kp_ros maintainers',
    maintainer_email='pose-kp-ros@example.com',
    description='6-DoF object pose from semantic keypoints (stacked hourglass + '
                'confidence-weighted perspective fit) for ROS 2.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'pose-kp = pose_kp_ros.tools.cli:main',
            'pose_kp_node = pose_kp_ros.ros.node:main',
            'pose_kp_lmo_camera = pose_kp_ros.ros.lmo_camera_node:main',
            'pose_kp_evaluator = pose_kp_ros.ros.pose_evaluator_node:main',
        ],
    },
)
