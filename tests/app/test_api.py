"""The app as an API: served in-process and called through `gradio_client`, as a script would call it."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def client(context):
    from gradio_client import Client

    from mmfedrec.app.ui import build_demo, launch_options

    demo = build_demo(context)
    demo.launch(
        server_name="127.0.0.1",
        server_port=_free_port(),
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        **launch_options(context),
    )
    try:
        yield Client(demo.local_url, verbose=False, download_files=False, analytics_enabled=False)
    finally:
        demo.close(verbose=False)


def _user_id(context) -> int:
    return int(context.user_ids[int(np.argmax(context.run.split.train_counts()))])


def test_every_endpoint_is_named(client) -> None:
    """Three events were served as /lambda, /lambda_1 and /lambda_2."""
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(named) == ["/new_item", "/on_recommend", "/on_show", "/on_train", "/search_image", "/search_text"]
    assert client.view_api(print_info=False, return_format="dict")["unnamed_endpoints"] == {}


def test_recommend_takes_the_user_id_it_documents_as_text_or_a_number(client, context) -> None:
    """The id was documented as a string ('1') but only an int passed the dropdown's check."""
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    user_parameter = named["/on_recommend"]["parameters"][0]
    documented = f"'{int(context.user_ids[0])}'"  # the dropdown's values: every user id, as text
    assert user_parameter["parameter_name"] == "user_id" and documented in user_parameter["python_type"]["type"]
    assert isinstance(user_parameter["example_input"], str)
    user_id = _user_id(context)
    as_text = client.predict(str(user_id), 5, False, api_name="/on_recommend")
    as_number = client.predict(user_id, 5, False, api_name="/on_recommend")
    assert as_text[0].startswith(f"User **{user_id}**") and as_text[:3] == as_number[:3]
    assert len(as_text[1]) == 5


def test_recommend_an_unknown_user_says_so_and_shows_nothing(client, context) -> None:
    """A typed id that is no user fell back to the previous user's recommendations."""
    message, recommendations, history, experts = client.predict("99999", 5, False, api_name="/on_recommend")
    assert message.startswith("Unknown user **99999**")
    assert recommendations == [] and history == [] and experts["data"] == []


@pytest.mark.parametrize(("rounds", "said"), [(0, "from 1 to 50, not 0"), (2.7, "from 1 to 50, not 2.7")])
def test_training_out_of_range_is_a_message_not_an_error(client, rounds: float, said: str) -> None:
    """Gradio's own bounds raised 'Error' (and a traceback in the server log) before the handler ran."""
    message = client.predict("ours-id-only", rounds, 200, 150, 0, api_name="/on_train")[0]
    assert message.startswith("Cannot start: rounds must be a whole number") and said in message


def test_a_busy_port_names_the_port_flag(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The message told users to set GRADIO_SERVER_PORT; our command takes --port."""
    from mmfedrec.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--threads", "1", "app", "--run", str(tiny_run), "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port}" in error and "--port" in error
    assert "GRADIO_SERVER_PORT" not in error


def test_recommend_serves_pictures_in_place(client, context) -> None:
    """Copying each answer's pictures into Gradio's cache (a sha256 and a copy per picture) halved throughput."""
    recommendations, history = client.predict(_user_id(context), 5, False, api_name="/on_recommend")[1:3]
    pictures = {str(Path(context.image(item)).resolve()) for item in range(len(context.titles))}
    assert {tile["image"]["path"] for tile in recommendations + history} <= pictures


def test_the_run_s_model_and_data_are_not_served(client, context) -> None:
    """Plots and pictures are served; the model and config in the same run folder are not."""
    import urllib.error
    import urllib.request

    def status(path: Path) -> int:
        try:
            with urllib.request.urlopen(f"{client.src.rstrip('/')}/gradio_api/file={path.resolve()}") as reply:
                return reply.status
        except urllib.error.HTTPError as error:
            return error.code

    folder = context.run.folder
    assert status(folder / "valid_curve.png") == 200
    assert status(folder / "model.safetensors") >= 400 and status(folder / "config.json") >= 400
