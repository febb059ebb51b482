"""package.xml declares what the installed node needs, so that rosdep installs it."""

import xml.etree.ElementTree as ET

# rosdep keys of the third-party Python packages the node imports at run time (layer 1-3 and the
# ROS node: network, solver, silhouette refinement, config files); onnxruntime has no distribution
# package: rosdep's key installs it with pip
NODE_RUNTIME_KEYS = ('python3-numpy', 'python3-opencv', 'python3-scipy', 'python3-yaml',
                     'python3-torch', 'python3-trimesh', 'python3-onnxruntime-pip')


def test_package_xml_lists_the_node_runtime_dependencies(repo_root):
    root = ET.parse(repo_root / 'package.xml').getroot()
    declared = {element.text for element in root.iter('exec_depend')}
    missing = [key for key in NODE_RUNTIME_KEYS if key not in declared]
    assert not missing, f'package.xml lacks <exec_depend> for {missing}'
