# The loader's serve loop without an application (device/loader.py _serve): an exception that
# escapes the agent's step (a bug, or a heap too full even for the agent's own error handler)
# resets the ECU, as the supervisor does when the agent's task ends beside an application, and
# a trial boot records it (E_AGENT_FAILED). It used to end the program: on the unix port exit
# status 1, on a board a REPL and no agent on the line until someone power-cycled the ECU.
# mpy-heapsize: 128k
from otalink.device import loader
from otalink.protocol import codes

RUN_RESET = 1  # agent._RUN_RESET


class Agent:
    exit = None
    on_slice = None

    def __init__(self, e):
        self.e = e
        self.faults = []
        self.polls = 0

    def poll(self, timeout_ms):
        self.polls += 1
        if self.polls == 3:
            raise self.e

    def note_fault(self, code):
        self.faults.append(code)


class Boot:
    dog = None
    wdt_ms = 4000
    trial_ms = 60000

    def __init__(self, agent, trial):
        self.agent = agent
        self.trial = trial
        agent.trial = trial


def test_an_exception_out_of_the_agent_resets_instead_of_ending_the_program():
    a = Agent(MemoryError("memory allocation failed, allocating 253 bytes"))
    assert loader._serve(Boot(a, False)) == RUN_RESET
    assert a.polls == 3 and a.faults == []


def test_on_a_trial_boot_it_is_recorded_as_the_agents_failure():
    a = Agent(ValueError("a bug"))
    assert loader._serve(Boot(a, True)) == RUN_RESET
    assert a.faults == [codes.E_AGENT_FAILED], a.faults
