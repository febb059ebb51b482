"""Set parameters of a running node through its set_parameters service; print the results as JSON.

Usage: param_client.py NODE 'name=value' ... 'name' ... (values parsed as YAML: 0.5, true, text;
a bare name is only read).
"""

import json
import sys
import time

from rcl_interfaces.srv import GetParameters, SetParameters
import rclpy
from rclpy.parameter import Parameter, parameter_value_to_python
import yaml


def main():
    node_name, assignments = sys.argv[1], sys.argv[2:]
    rclpy.init()
    node = rclpy.create_node('param_client')
    setter = node.create_client(SetParameters, f'{node_name}/set_parameters')
    getter = node.create_client(GetParameters, f'{node_name}/get_parameters')
    if not setter.wait_for_service(timeout_sec=30) or not getter.wait_for_service(timeout_sec=30):
        print(json.dumps({'error': 'service not available'}))
        return 1
    results = []
    for assignment in [a for a in assignments if '=' in a]:
        name, _, text = assignment.partition('=')
        request = SetParameters.Request(
            parameters=[Parameter(name, value=yaml.safe_load(text)).to_parameter_msg()])
        future = setter.call_async(request)
        end = time.monotonic() + 30
        while not future.done() and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        result = future.result().results[0]
        results.append({'name': name, 'successful': result.successful, 'reason': result.reason})
    names = sorted({a.partition('=')[0] for a in assignments})
    future = getter.call_async(GetParameters.Request(names=names))
    end = time.monotonic() + 30
    while not future.done() and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    values = {name: parameter_value_to_python(value)
              for name, value in zip(names, future.result().values)}
    print(json.dumps({'results': results, 'values': values}))
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
