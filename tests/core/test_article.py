"""The seed article's network, trained by core, matches a transcription of its code."""
import numpy as np

import core

X = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
Y = np.array([[0.2], [0.5], [0.8]])
X_TEST = np.array([[0.2, 0.4, 0.6]])


def article_transcription():
    """The article's code step by step, its globals turned into locals."""
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    def sigmoid_derivative(x):
        return x * (1 - x)

    input_size, hidden_size, output_size = 3, 4, 1
    np.random.seed(42)
    weights_input_hidden = np.random.rand(input_size, hidden_size)
    weights_hidden_output = np.random.rand(hidden_size, output_size)
    learning_rate = 0.1

    def forward_pass(X):
        hidden_input = np.dot(X, weights_input_hidden)
        hidden_output = sigmoid(hidden_input)
        final_input = np.dot(hidden_output, weights_hidden_output)
        final_output = sigmoid(final_input)
        return hidden_output, final_output

    def calculate_loss(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2)

    def backward_pass(X, y_true, hidden_output, final_output):
        error = y_true - final_output
        d_final_output = error * sigmoid_derivative(final_output)
        error_hidden_layer = d_final_output.dot(weights_hidden_output.T)
        d_hidden_layer = error_hidden_layer * sigmoid_derivative(hidden_output)
        weights_hidden_output[...] += hidden_output.T.dot(d_final_output) * learning_rate
        weights_input_hidden[...] += X.T.dot(d_hidden_layer) * learning_rate

    initial = (weights_input_hidden.copy(), weights_hidden_output.copy())
    losses = {}
    for epoch in range(10000):
        hidden_output, final_output = forward_pass(X)
        loss = calculate_loss(Y, final_output)
        backward_pass(X, Y, hidden_output, final_output)
        if epoch % 1000 == 0:
            losses[epoch] = loss
    _, predictions = forward_pass(X_TEST)
    return initial, losses, predictions


def test_uniform01_seed_42_draws_the_articles_weights():
    p = core.init_params(core.MLP(3, (4,), 1), "uniform01", 42)
    rs = np.random.RandomState(42)
    assert np.array_equal(p.W[0][0], rs.rand(3, 4))
    assert np.array_equal(p.W[1][0], rs.rand(4, 1))


def test_core_reproduces_the_article_to_1e_12():
    initial, losses, predictions = article_transcription()
    mlp = core.MLP(3, (4,), 1, activation="sigmoid", output_activation="sigmoid", bias=False)
    params = core.init_params(mlp, "uniform01", 42)
    assert np.array_equal(params.W[0][0], initial[0]) and np.array_equal(params.W[1][0], initial[1])
    result = core.train(mlp, params, X, Y, loss="half_sse", optimizer=core.OptimizerSpec("sgd", lr=0.1),
                        epochs=10000, log_every=1000)
    assert list(result.log_epochs) == list(range(0, 10000, 1000))
    expected = np.array([losses[e] for e in range(0, 10000, 1000)])
    np.testing.assert_allclose(result.mse[0], expected, rtol=1e-12, atol=0)
    pred = core.predict(mlp, result.params, X_TEST)            # (1, 1, 1)
    np.testing.assert_allclose(pred[0], predictions, rtol=1e-12, atol=0)
    # the loss really went down, so the comparison is not between two constants
    assert expected[-1] < expected[0] / 50
    assert result.diverged_epoch[0] == -1
