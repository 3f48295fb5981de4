"""The Windows host simulator behind ``peer.py --mode sim`` (see ../README.md, "Sim mode").

    sim/host.py      the peer integration: PowerShell host framing, dispatch, transfers, logs, reboot
    sim/frames.py    MIXOP1 frames (docs/windows-protocol.md §2)
    sim/state.py     host.json and the simulated disk (fs/)
    sim/catalog.py   what a fresh Windows Server 2022 host has (features, services, PATH ...)
    sim/cmdlets.py   the cmdlet layer, written from Microsoft's cmdlet documentation
    sim/errors.py    CmdletError: failures shaped like PowerShell ErrorRecords
    sim/transfer.py  mixop's put/get scripts against the simulated disk
    sim/modules/     one handler file per module (win_ping.py, setup.py, win_feature.py, win_stat.py ...)
"""

from .host import SimHost  # noqa: F401
