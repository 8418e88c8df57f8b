"""What a Deep Learning Specialization student does with fastopt, as the course taught it:
``predict`` returning the predictions, rebinding dict entries, the course's gradient dicts,
``model`` with another layer list."""
import numpy as np
import pytest

import fastopt
import fastopt.lab
import fastopt.reference
import fastopt.reference.lab

LABS = [fastopt.lab, fastopt.reference.lab]
MODULES = [fastopt, fastopt.reference]
CLASSES = ["SGD", "Momentum", "RMSProp", "Adam", "AdamW", "Adagrad"]


def course_params():
    rng = np.random.default_rng(0)
    return {"W1": rng.standard_normal((5, 2)), "b1": np.zeros((5, 1)),
            "W2": rng.standard_normal((1, 5)), "b2": np.zeros((1, 1))}


# --- predict: the course's (prints the accuracy, returns the predictions) ---------------------

@pytest.mark.parametrize("lab", LABS)
def test_predict_prints_the_accuracy_and_returns_the_predictions(lab, capsys):
    X, Y = lab.load_dataset()
    params = lab.initialize_parameters([2, 5, 2, 1])
    predictions = lab.predict(X, Y, params)  # the notebook's line
    a3, _ = lab.forward_propagation(X, params)
    # The course: p = np.zeros((1, m), dtype=np.int); p[0, i] = 1 if a3[0, i] > 0.5 else 0.
    want = np.zeros((1, X.shape[1]), dtype=int)
    for i in range(a3.shape[1]):
        want[0, i] = 1 if a3[0, i] > 0.5 else 0
    assert isinstance(predictions, np.ndarray)
    assert predictions.dtype == want.dtype and predictions.shape == (1, 300)
    np.testing.assert_array_equal(predictions, want)
    assert capsys.readouterr().out == f"Accuracy: {np.mean(want[0, :] == Y[0, :])}\n"


# --- rebinding an entry of the dict an optimizer steps ----------------------------------------

@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("name", CLASSES)
def test_rebinding_a_dict_entry_raises_at_the_next_step(module, name):
    params = course_params()
    opt = getattr(module, name)(params, lr=0.1)
    grads = {k: np.ones_like(p) for k, p in params.items()}
    opt.step(grads)
    params["W1"] = params["W1"] - 0.1 * grads["W1"]  # the course's update
    others = {k: params[k].copy() for k in params}
    state = {s: [a.copy() for a in opt._state[s]] for s in opt.state_names}
    t = opt.t
    with pytest.raises(ValueError, match=r"params\['W1'\] is no longer the array this "
                                         rf"{name} updates: the dict entry was rebound"):
        opt.step(grads)
    assert opt.t == t  # nothing changed: not the step count, not an array
    for k in params:
        np.testing.assert_array_equal(params[k], others[k])
    for s in opt.state_names:
        for a, b in zip(opt._state[s], state[s]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("module", MODULES)
def test_removing_a_dict_entry_raises_and_writing_into_one_is_followed(module):
    params = course_params()
    opt = module.SGD(params, lr=1.0)
    grads = {k: np.ones_like(p) for k, p in params.items()}
    params["W1"][...] = 3.0  # in place: the optimizer's own array
    params["b1"] -= 1.0
    opt.step(grads)
    assert (params["W1"] == 2.0).all() and (params["b1"] == -2.0).all()
    del params["b2"]
    with pytest.raises(ValueError, match=r"params\['b2'\] is no longer the array"):
        opt.step(grads)


def test_packed_and_list_parameters_have_nothing_to_rebind():
    params = fastopt.pack(course_params())
    opt = fastopt.SGD(params, lr=1.0)
    grads = fastopt.pack_like(params)
    params["W1"] = np.ones((5, 2))  # copied into the buffer, not rebound
    opt.step(grads)
    arrays = list(course_params().values())
    opt = fastopt.SGD(arrays, lr=1.0)
    arrays[0] = np.zeros((5, 2))  # the list is the user's; the optimizer holds its own
    opt.step([np.zeros_like(a) for a in opt.params])


# --- the course's gradient dict given to an optimizer -----------------------------------------

@pytest.mark.parametrize("module", MODULES)
def test_step_given_the_course_grads_says_to_use_fastopt_lab(module):
    params = course_params()
    X, Y = np.ones((2, 4)), np.ones((1, 4))
    grads = {"d" + k: np.ones_like(p) for k, p in params.items()}
    grads["dz1"] = np.ones((5, 4))  # the course's backward pass returns dz1, da1, ... too
    opt = module.Adam(params, lr=0.1)
    before = {k: p.copy() for k, p in params.items()}
    with pytest.raises(ValueError, match=r"these are the course's names \(dW1 for W1\).*"
                                         r"fastopt\.lab") as info:
        opt.step(grads)
    assert isinstance(info.value, KeyError)  # still the MissingKeyError it was
    assert opt.t == 0
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    # The hint says how; the way it says works.
    opt.step({k: grads["d" + k] for k in params})
    v, s = fastopt.lab.initialize_adam(params)
    fastopt.lab.update_parameters_with_adam(params, grads, v, s, t=1)


def test_other_missing_keys_get_no_course_hint():
    params = course_params()
    opt = fastopt.SGD(params, lr=0.1)
    with pytest.raises(KeyError) as info:
        opt.step({"W1": np.ones((5, 2))})
    assert "course" not in str(info.value)


# --- model's layer list, checked up front -----------------------------------------------------

@pytest.mark.parametrize("lab", LABS)
@pytest.mark.parametrize("layers,error,match", [
    ([2, 5, 4, 2, 1], ValueError, r"^layers_dims must hold four sizes \[n_x, n_1, n_2, 1\], "
                                  r"e\.g\. \[2, 5, 2, 1\].*got 5 sizes \[2, 5, 4, 2, 1\]"),
    ([2, 5, 1], ValueError, r"^layers_dims must hold four sizes"),
    ([2, 5, 2, 3], ValueError, r"^layers_dims\[3\] must be 1"),
    ([3, 5, 2, 1], ValueError, r"^layers_dims\[0\] must be the number of rows of X .*2, got 3"),
    ([2, 0, 2, 1], ValueError, r"^layers_dims\[1\] must be an integer >= 1, got 0"),
    ([2, 5.0, 2, 1], TypeError, r"^layers_dims\[1\] must be an integer >= 1, got float"),
    ("2521", TypeError, r"^layers_dims must be a list of four layer sizes"),
    (None, TypeError, r"^layers_dims must be a list of four layer sizes"),
])
def test_model_checks_its_layer_list_first(lab, layers, error, match, capsys):
    X, Y = lab.load_dataset()
    np.random.seed(123)
    with pytest.raises(error, match=match):
        lab.model(X, Y, layers, "adam", num_epochs=1)
    assert capsys.readouterr().out == ""  # nothing ran: no cost printed
    assert np.random.randint(1 << 30) == np.random.RandomState(123).randint(1 << 30)


def test_model_takes_a_numpy_layer_list():
    X, Y = fastopt.lab.load_dataset()
    params = fastopt.lab.model(X, Y, np.array([2, 5, 2, 1]), "gd", num_epochs=1,
                               print_cost=False)
    assert params["W3"].shape == (1, 2)
