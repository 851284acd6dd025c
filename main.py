"""LPN Pose from a checkout: ``python main.py --camera 0``; the same as the installed ``lpn-pose`` command.

The command line lives in ``lpn_pose_cli.py`` (``python main.py --help`` lists every flag).
"""
import sys

from lpn_pose_cli import main

if __name__ == "__main__":
    sys.exit(main())
