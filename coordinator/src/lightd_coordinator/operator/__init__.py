"""The operator verbs of ``lightd-coordinator``: a client of a running coordinator's API.

::

    lightd-coordinator nodes list [--status S] [--label k=v]    table of nodes
    lightd-coordinator nodes show ID                             one node, its status, services
    lightd-coordinator nodes delete ID                           unregister a node
    lightd-coordinator dispatch NODE ACTION [--type exec|container] [--timeout 30s]
                                [--param key=value ...]          run a command, wait, print output
    lightd-coordinator dispatch --selector env=dev ACTION ...    ... on every matching node
    lightd-coordinator containers list NODE
    lightd-coordinator containers create NODE [--spec FILE] [--id ID] [--image IMG] [--cmd CMD]
                                [--port [HOST:]N ...] [--env K=V ...] [--memory 512m] [--disk 10g]
                                [--install-script @FILE] [--wait | --no-wait]
    lightd-coordinator containers start|stop|restart|kill|reinstall|delete|status|logs NODE SERVER
    lightd-coordinator containers exec NODE SERVER COMMAND...
    lightd-coordinator containers quota NODE SERVER [--resize MB]   disk quota (limits.disk)
    lightd-coordinator services                                  services per node
    lightd-coordinator events [--types a,b] [--node ID]          tail /ws live
    lightd-coordinator activity [--node N] [--user U] [--since 1h] ...  who did what (a table)

Every verb takes ``--url`` (default: the config's server address), ``--token`` (default:
``$LIGHTD_COORD_TOKEN``, else the config's ``server.auth_token``) and ``--json`` (the API's JSON
instead of tables). Tables and progress lines are for people; ``--json`` is for scripts.

The package, one idea per module:

- ``parser``     the argparse verbs
- ``client``     the HTTP client: typed answers (the shared models), refusals said plainly, and
                 the ``/ws`` event stream
- ``rendering``  tables, event lines and the progress line
- ``verbs_quota`` ``containers quota``: a server's disk quota, shown or resized
- ``verbs``      what each verb does; waiting (for a command's result, for a server's lifecycle)
                 listens on ``/ws``
- ``verbs_activity``  the ``activity`` verb: its flags, the page walk and the table

Exit status: 0 done, 1 the work failed (a command that did not succeed, a server that failed to
install, a selector that matched no node, a refused token), as :class:`OperatorError` says.
"""

from lightd_coordinator.operator.client import TOKEN_ENV, Api, OperatorError
from lightd_coordinator.operator.parser import add_operator_commands
from lightd_coordinator.operator.verbs import run_operator

__all__ = ["TOKEN_ENV", "Api", "OperatorError", "add_operator_commands", "run_operator"]
