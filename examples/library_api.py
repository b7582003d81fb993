"""Compare two explanation methods on a bundled agent through the library API and write the report.

Run: python examples/library_api.py [OUT_DIR]   (default: ./library-api-report)
"""

import sys

import interpret_rl
from interpret_rl.report import write_report

agent = interpret_rl.load_agent("cartpole-a2c")
result = interpret_rl.compare(agent, methods=["saliency", "integrated-gradients"],
                              targets=["action", "value"], frames=4, seed=0)
for method in result.methods:
    errors = result.method_errors(method.name)
    print(f"{method.name}: {result.method_seconds(method.name):.2f} s, {'ok' if not errors else errors[0]}")
paths = write_report(result, sys.argv[1] if len(sys.argv) > 1 else "library-api-report")
print(f"open {paths['html']} in a browser")
