"""The speed sections of docs/performance.md (node, threads, commits, stages, parts, GPU).

Each function takes the results folder and returns the section's Markdown lines; a missing
result is listed as not measured. Used by benchmarks/performance_report.py.
"""

from report_format import number, read

from pose_kp_ros.pipeline.stage_timer import TOTAL, parents_first


def node_section(results):
    """Return the node benchmark and soak figures."""
    lines = ['## The node end to end (`benchmarks/bench_node.py`, `benchmarks/soak_node.py`)', '']
    bench = read(results / 'bench_node.json')
    if bench is None:
        lines += ['Not measured yet: `python benchmarks/bench_node.py --rate 30 --seconds 300`.',
                  '']
    else:
        lines += [f"Camera replay at {bench['input_rate_hz']:g} Hz for {bench['seconds']:g} s, "
                  f"pose node and receiver in separate processes over DDS (loopback), "
                  f"`{bench['pipeline_config']}`, load average at the end "
                  f"{', '.join(f'{x:.1f}' for x in bench['load_average_1_5_15'])}. Command: "
                  f"`python benchmarks/bench_node.py --rate {bench['input_rate_hz']:g} --seconds "
                  f"{bench['seconds']:g}`.", '',
                  '| figure | value |', '|---|---|',
                  f"| poses received | {bench['poses_received']} |",
                  f"| output rate | {number(bench['output_rate_hz'])} poses/s |",
                  f"| latency (image stamp -> PoseStamped received) median / p95 | "
                  f"{number(bench['latency_median_ms'], 0)} / "
                  f"{number(bench['latency_p95_ms'], 0)} ms |",
                  f"| node CPU | {number(bench['node_cpu_percent_of_one_core'], 0)}% of one "
                  'core |',
                  f"| node resident memory start / end / max | "
                  f"{number(bench['node_rss_mb_start'], 0)} / "
                  f"{number(bench['node_rss_mb_end'], 0)} / "
                  f"{number(bench['node_rss_mb_max'], 0)} MB |", '']
    soak = read(results / 'soak_node.json')
    if soak is not None:
        latency = soak['latency_ms']
        lines += [f"Soak ({soak['duration_s']:g} s at {soak['rate_hz']:g} Hz, details and fault "
                  f"tests in [reliability.md](reliability.md)): {soak['frames_answered']} of "
                  f"{soak['frames_sent']} frames answered, "
                  f"{soak['node_counters']['frames_dropped']} dropped by the newest-frame policy, "
                  f"{soak['lost_outputs']} lost; latency p50 / p95 "
                  f"{number(latency['all']['p50'], 0)} / {number(latency['all']['p95'], 0)} ms; "
                  f"memory growth after warm-up "
                  f"{number(soak['memory']['rss_growth_percent'], 2)}%.", '']
    return lines


def threads_section(results):
    """Return the threads-and-batching figures of bench_threads*.json, a table per file."""
    lines = ['## Threads and batching (`benchmarks/bench_threads.py`)', '']
    paths = sorted(results.glob('bench_threads*.json'))
    if not paths:
        return lines + ['Not measured yet: `python benchmarks/bench_threads.py`.', '']
    figures = [('keypoints, 3 crops in one call (ms)', 'keypoints_batch3_one_call_ms', 1),
               ('keypoints, 3 calls of one crop (ms)', 'keypoints_batch3_separate_calls_ms', 1),
               ('keypoints, 6 crops in one call (ms)', 'keypoints_batch6_one_call_ms', 1),
               ('keypoints, 6 calls of one crop (ms)', 'keypoints_batch6_separate_calls_ms', 1),
               ('detector, one frame (ms)', 'detector_ms', 1),
               ('eval-lmo median ms per frame', 'eval_lmo_median_ms', 0),
               ('node poses/s at 30 Hz input', 'node_poses_per_s', 1),
               ('node latency median / p95 (ms)', 'node_latency_median_ms', 0),
               ('1-minute load average at the start', 'load_average_1min_at_start', 1)]
    for path in paths:
        bench = read(path)
        rows = bench['rows']
        lines += [f"`{path.name}`: each setting's processes held to the listed cores (as "
                  f"`taskset -c` does), ONNX Runtime intra-op threads as the node's "
                  f"`torch_threads` / eval-lmo's `--threads` set them; CPU: {bench['cpu_model']}. "
                  'Network rows: the shipped models on random inputs, median ms. eval-lmo: the '
                  f"first {rows[0]['eval_lmo_frames']} LM-O photos. Node: `bench_node.py --rate "
                  '30`.', '', '| figure | ' + ' | '.join(
                      f"cores {','.join(map(str, row['cores']))}, {row['threads']} thread"
                      + ('s' if row['threads'] > 1 else '') for row in rows) + ' |',
                  '|---|' + '---|' * len(rows)]
        for label, key, digits in figures:
            cells = [number(row.get(key), digits) for row in rows]
            if key == 'node_latency_median_ms':
                cells = [f"{cell} / {number(row.get('node_latency_p95_ms'), 0)}"
                         for cell, row in zip(cells, rows)]
            lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    return lines


COMPARED = {'eval_lmo_median_ms': ('eval-lmo ms per frame', 1),
            'eval_lmo_add_0.1d': ('eval-lmo ADD < 0.1 d', 3),
            'node_poses_per_s': ('node poses/s at 30 Hz input', 2),
            'node_latency_median_ms': ('node latency median (ms)', 0)}


def load_average_range(runs):
    """Return the caption's load-average clause for compare_commits.py's runs ({side: [run]}).

    '' where the runs did not record it.
    """
    loads = [run['load_average_1min'] for side in runs.values() for run in side
             if 'load_average_1min' in run]
    if not loads:
        return ''
    return f"; 1-minute load average {min(loads):.1f}-{max(loads):.1f} at the runs' ends"


def comparison_section(results):
    """Return the side-by-side comparisons of results/compare_*.json (compare_commits.py)."""
    lines = []
    for path in sorted(results.glob('compare_*.json')):
        report = read(path)
        other, this = report['commits']['other'], report['commits']['this']
        medians = report['medians']
        if not lines:
            lines = ['## Against an earlier commit (`benchmarks/compare_commits.py`)', '']
        lines += [f"`{path.name}`: {report['commits']['other']} and this checkout "
                  f"({this}), alternately, {len(report['runs']['this'])} runs each, every "
                  f"process held to core(s) {', '.join(map(str, report['cores']))}; "
                  f"eval-lmo on the first {report['frames']} photos (one thread), the node "
                  f"at 30 Hz for {report['node_seconds']:g} s; CPU: {report['cpu_model']}"
                  f"{load_average_range(report['runs'])}.", '',
                  f'| median | {other} | {this} | {this} / {other} |', '|---|---|---|---|']
        for key, ratio in report['this_over_other'].items():
            label, digits = COMPARED.get(key, (key, 2))
            lines.append(f"| {label} | {number(medians['other'][key], digits)} | "
                         f"{number(medians['this'][key], digits)} | {number(ratio, 2)}x |")
        lines.append('')
    return lines


STAGE_SOURCES = (
    ('driller_detector', 'eval-lmo detector', 'pose-kp eval-lmo --object driller'),
    ('driller_detector_tracking', 'eval-lmo tracking',
     'pose-kp eval-lmo --object driller --tracking'),
)


def stage_label(name):
    """Return a stage's table label: nested stages ('parent/stage') indented under the parent."""
    depth = name.count('/')
    return '&nbsp;&nbsp;' * 2 * depth + ('' if depth == 0 else '&#8627; ') \
        + name.rsplit('/', 1)[-1]


def stages_section(results):
    """Return where a frame's time goes: the per-stage times of eval-lmo and of the node."""
    columns, cpus, loads = [], set(), []
    for stem, label, _ in STAGE_SOURCES:
        summary = read(results / 'eval_lmo' / f'{stem}_summary.json') or {}
        if summary.get('stages'):
            columns.append((f'{label} median / mean', {
                name: f"{number(row['median_ms'])} / {number(row['mean_ms'])}"
                for name, row in summary['stages'].items()}, summary))
            cpus.add(summary.get('cpu_model'))
            loads.append((label, summary.get('load_average_1_5_15')))
    bench = read(results / 'bench_node.json') or {}
    node = bench.get('stages_median_ms_last_100_frames')
    if node:
        columns.append(('node median', {name: number(ms) for name, ms in node.items()}, None))
        cpus.add(bench.get('cpu_model'))
        loads.append(('node', bench.get('load_average_1_5_15')))
    lines = ["## Where a frame's time goes", '']
    if not columns:
        return lines + ['Not measured yet: `pose-kp eval-lmo --object driller` writes the '
                        'stages into its summary.', '']
    lines += ['Wall time per stage of one frame (`pose_kp_ros.pipeline.stage_timer`; a stage '
              'a frame skips counts as 0 ms in it). Indented rows are parts of the row above '
              'them; the top-level rows do not overlap, except those marked (concurrent): '
              "with tracking the detector's search runs on a worker thread while the tracks' "
              'crops go through the network, and the frame waits for it only in "waiting for '
              'concurrent requests". What the other top-level rows leave out of the frame '
              'total (duplicate removal, request bookkeeping) is the untimed rest. eval-lmo: '
              '`' + '`, `'.join(command for _, _, command in STAGE_SOURCES) + '` (one thread, '
              'the image already decoded, no overlay timed); node: '
              '`python benchmarks/bench_node.py`, the medians of its last 100 frames from '
              '`/diagnostics` (`stage_ms/...`), tracking on, no overlay or marker '
              'subscriber (those stages run only when subscribed). CPU: '
              + ', '.join(sorted(c for c in cpus if c)) + '; 1-minute load average at the end of '
              'each run (2 cores, shared): '
              + ', '.join(f'{label} {number(load[0])}' for label, load in loads if load) + '.',
              '',
              '| stage (ms) | ' + ' | '.join(title for title, _, _ in columns) + ' |',
              '|---|' + '---|' * len(columns)]
    names = parents_first(dict.fromkeys(  # the node's column first: it has the most stages
        n for _, rows, _ in reversed(columns) for n in rows if n != TOTAL))
    for name in names:
        lines.append(f'| {stage_label(name)} | '
                     + ' | '.join(rows.get(name, '-') for _, rows, _ in columns) + ' |')
    lines.append(f'| **{TOTAL}** | '
                 + ' | '.join(f'**{rows.get(TOTAL, "-")}**' for _, rows, _ in columns) + ' |')
    lines.append('')
    for title, _, summary in columns:
        if summary is None:
            continue
        stages, label = summary['stages'], title.split(' median')[0]
        total = stages.get(TOTAL, {}).get('mean_ms')
        if total:
            shares = sorted(((row['mean_ms'] / total, name) for name, row in stages.items()
                             if '/' not in name and name != TOTAL), reverse=True)
            lines.append(f'{label}, share of the mean frame ({number(total)} ms): '
                         + ', '.join(f'{name} {share:.0%}' for share, name in shares) + '; '
                         + ', '.join(f'{number(mean, 2)} {name}' for name, mean in
                                     (summary.get('tallies_per_frame') or {}).items())
                         + ' per frame.')
    return lines + ['']


def runtime_table(network):
    """Return the torch / ONNX Runtime comparison of bench_network.json (none in older files)."""
    rows = [row for row in network['presets'] if 'onnx_1thread_ms_per_crop_b1' in row]
    if not rows:
        return []
    start, end = (network[f'load_average_1_5_15_{when}'][0] for when in ('start', 'end'))
    lines = [f"The same networks in torch and in ONNX Runtime {network['onnxruntime']} (as "
             '`pose-kp export --out FILE.onnx` writes them), one thread, ms per crop; both '
             f"run the same inputs alternately in one run ({network['cpu_model']}, 1-minute "
             f'load average {start:.1f} at the start, {end:.1f} at the end: other jobs share '
             'the 2 cores, the ratios are steadier than the times):', '',
             '| preset | batch | torch | ONNX Runtime | torch / ONNX Runtime |',
             '|---|---|---|---|---|']
    for row in rows:
        for batch in (1, 3, 8):
            lines.append(f"| {row['preset']} | {batch} | "
                         f"{number(row[f'cpu_1thread_ms_per_crop_b{batch}'])} | "
                         f"{number(row[f'onnx_1thread_ms_per_crop_b{batch}'])} | "
                         f"{number(row[f'torch_over_onnx_b{batch}'], 2)}x |")
    return lines + ['']


def parts_section(results):
    """Return the solver, network and detector speed figures."""
    lines = ['## Parts', '']
    network = read(results / 'bench_network.json')
    if network is not None:
        lines += ['Keypoint network (`python benchmarks/bench_network.py`), ms per crop on CPU, '
                  f"torch with {network['threads']} threads (the last column with one):",
                  '', '| preset | parameters | input -> heatmap | batch 1 | batch 8 | '
                  'batch 8, 1 thread |', '|---|---|---|---|---|---|']
        for row in network['presets']:
            lines.append(f"| {row['preset']} | {row['params'] / 1e6:.2f} M | "
                         f"{row['input_size']} -> {row['heatmap_size']} | "
                         f"{number(row['cpu_ms_per_crop_b1'])} | "
                         f"{number(row['cpu_ms_per_crop_b8'])} | "
                         f"{number(row.get('cpu_1thread_ms_per_crop_b8'))} |")
        lines += [''] + runtime_table(network)
    detector = read(results / 'bench_detector.json')
    if detector is not None:
        speed = detector['speed_640x480']['1_threads']
        lines += [f"Full-image detector (`python benchmarks/bench_detector.py`): "
                  f"{detector['parameters'] / 1e6:.2f} M parameters, 640x480 frame in "
                  f"{number(speed['median_ms'])} ms median (p90 {number(speed['p90_ms'])} ms), "
                  'one thread.', '']
    solver = read(results / 'bench_solver.json')
    if solver is not None:
        lines += ['Pose solver (`python benchmarks/bench_solver.py`; '
                  f"{solver['setup']}):", '',
                  '| method | data | median rotation error | ADD < 0.1 d | ms per call '
                  '| fits/s |',
                  '|---|---|---|---|---|---|']
        for row in solver['rows']:
            lines.append(f"| {row['method']} | {row['variant']} | "
                         f"{number(row['rotation_error_deg_median'], 2)} deg | "
                         f"{number(row['add_accuracy_0.1d'], 0, 100, '%')} | "
                         f"{number(row['median_ms_per_call'], 2)} | "
                         f"{number(row['fits_per_second'], 0)} |")
        lines.append('')
    return lines


GPU_RUNTIMES = ('torch-cuda', 'ort-cuda', 'ort-tensorrt')


def gpu_how_to():
    """Return how bench_gpu.py runs on a GPU machine."""
    return ['- On a GPU machine without network that has its own Python with a CUDA build of '
            'torch: `scripts/offline_gpu/bench_gpu.sh bundle` here packs the onnxruntime-gpu '
            'wheel (1.31.1, built for CUDA 13, about 256 MB; `ORT_GPU=0` leaves it out, about '
            '26 MB then, and the ONNX Runtime rows run on the CPU only), trimesh and 50 LM-O '
            'photos into `.offline_bench/`; copy the repository with it there and run '
            '`scripts/offline_gpu/bench_gpu.sh run` (the JSON and log go to `$OUT`). The node '
            'rows need rclpy there (the ROS wheels are for Python 3.11): without it each is a '
            "line in the output saying so. TensorRT rows need TensorRT's libraries on that "
            'machine, else ONNX Runtime falls back to CUDA and the report says so.',
            '- With the project venv on a GPU machine: a CUDA build of torch and '
            '`onnxruntime-gpu` in place of `onnxruntime`, then `python benchmarks/bench_gpu.py`.',
            '- Then put `bench_gpu.json` in `results/` and run '
            '`python benchmarks/performance_report.py`.', '']


def gpu_section(results):
    """Return the GPU runtimes' figures of bench_gpu.json, or how to measure them."""
    lines = ['## On a GPU (`benchmarks/bench_gpu.py`)', '',
             'The keypoint network at batch 1, 2, 3, 4 and 8 (all crops in one run call) and the '
             "detector (batch 1) on torch CUDA and on ONNX Runtime's CUDA and TensorRT "
             "providers, beside torch and ONNX Runtime on the CPU; TensorRT's engine build "
             'against a start from its engine cache; the providers that actually ran; the whole '
             "pipeline per LM-O frame (eval-lmo's code path) and the node's latency "
             '(`bench_node.py --device cuda`) on each ONNX Runtime runtime; the GPU, driver and '
             'CUDA versions and the CPU model. A runtime the machine lacks is one line in the '
             'output, the CPU rows run anywhere.', '']
    bench = read(results / 'bench_gpu.json')
    timed = [row for row in (bench or {}).get('runtimes', [])
             if row['name'] in GPU_RUNTIMES and 'keypoint_ms_per_call' in row]
    if not timed:
        return lines + ['Figures pending: no session with a GPU has run it yet.', ''] \
            + gpu_how_to()
    info = bench['machine']
    gpus = '; '.join(f"{g['name']} (driver {g['driver']})" for g in info['gpus']) or '-'
    lines += [f"Measured on {gpus}, driver CUDA {info['driver_cuda_version']}, torch "
              f"{info['torch']} (CUDA {info['torch_cuda_version']}), "
              f"{info['onnxruntime_package'] or 'onnxruntime'} {info['onnxruntime']}, TensorRT "
              f"{info['tensorrt'] or '-'}; CPU {info['cpu_model']} ({info['cpu_count']} cores, "
              f"{bench['threads']} thread(s) used). Command: `python benchmarks/bench_gpu.py` "
              '(medians of ' f"{bench['repeats']} calls).", '',
              '| runtime | providers | ' + ' | '.join(f'batch {b}' for b in bench['batches'])
              + ' | detector | first run | cached start |',
              '|---|---|' + '---|' * (len(bench['batches']) + 3)]
    for row in bench['runtimes']:
        if 'keypoint_ms_per_call' not in row:
            continue
        ms = row['keypoint_ms_per_call']
        lines.append(f"| {row['name']} | {', '.join(row.get('keypoints_providers') or ['-'])} | "
                     + ' | '.join(number(ms[f'b{b}'], 2) for b in bench['batches'])
                     + f" | {number(ms['detector_b1'], 2)} | "
                     f"{number(row.get('keypoints_first_run_s'), 2, suffix=' s')} | "
                     f"{number(row.get('keypoints_cached_start_s'), 2, suffix=' s')} |")
    lines += ['', 'ms per run call (all crops in one batch); first run: loading and the first '
              "call (TensorRT builds its engines then); torch's keypoint network has random "
              'weights (same architecture).', '']
    if bench['pipeline']:
        lines += [f"Whole pipeline per LM-O frame ({bench['frames']} photos, detector boxes):",
                  '', '| runtime | median / p95 ms | network | detector | silhouette refinement '
                  '| ADD < 0.1 d | detection rate |', '|---|---|---|---|---|---|---|']
        for row in bench['pipeline']:
            stages = row['stages_median_ms']
            lines.append(f"| {row['runtime']} | {number(row['runtime_median_ms'])} / "
                         f"{number(row['runtime_p95_ms'])} | {number(stages.get('network'))} | "
                         f"{number(stages.get('detector'))} | "
                         f"{number(stages.get('silhouette refinement'))} | "
                         f"{number(row['add_0.1d_accuracy'], 1, 100, '%')} | "
                         f"{number(row['detection_rate'], 1, 100, '%')} |")
        lines.append('')
    nodes = [row for row in bench['node'] if 'latency_median_ms' in row]
    if nodes:
        lines += ['The node at 30 Hz (`bench_node.py --device ...`):', '',
                  '| runtime | latency median / p95 | output rate |', '|---|---|---|']
        lines += [f"| {row['runtime']} | {number(row['latency_median_ms'], 0)} / "
                  f"{number(row['latency_p95_ms'], 0)} ms | "
                  f"{number(row['output_rate_hz'], 1)} poses/s |" for row in nodes]
        lines.append('')
    if bench['not_measured']:
        lines += ['Not timed on that machine:', '']
        lines += [f'- {line}' for line in bench['not_measured']] + ['']
    return lines
