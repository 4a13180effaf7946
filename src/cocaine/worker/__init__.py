"""Writing apps: a worker serving events to handlers, their requests and responses, a logger.

from cocaine.worker import Worker

def echo(request, response):
    message = yield request.read()
    response.write(message)
    response.close()

Worker().run({"ping": echo})
"""

from cocaine.worker.http import http
from cocaine.worker.logger import Logger
from cocaine.worker.request import Request
from cocaine.worker.response import Response
from cocaine.worker.worker import Worker, WorkerState

__all__ = ["Logger", "Request", "Response", "Worker", "WorkerState", "http"]
