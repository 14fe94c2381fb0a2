//! Connections: admitting them, reading their input into packets, writing
//! their output once per iteration, and ending them (with their Wills).

use super::*;
use bytes::Buf;

impl Engine {
    /// A connection accepted by listener `index`, within the total and the
    /// listener's own `max_connections`: its key, or `None` if refused (the
    /// loop drops the socket).
    pub fn add_conn(&mut self, addr: SocketAddr, index: usize) -> Option<ConnKey> {
        self.stats.sockets_accepted += 1;
        let listener_index = u8::try_from(index).ok()?;
        let own = self.config.listeners.get(index)?.settings.max_connections;
        let clients = self.listener_clients.get_mut(index)?;
        let total = self.config.max_connections;
        let full = if total > 0 && self.conns.len() >= total {
            Some(total)
        } else {
            (own > 0 && *clients >= own).then_some(own)
        };
        if let Some(max) = full {
            warn!("{addr}: refused: max_connections ({max}) reached");
            return None;
        }
        *clients += 1;
        self.next_serial = self.next_serial.wrapping_add(1);
        let key = self.conns.next_key();
        let mut conn = Conn::new(addr, listener_index, self.next_serial, self.now_ms);
        if let Some(at) = conn.deadline(self.config.connect_timeout) {
            conn.set_timer_at(Some(at));
            self.timers.schedule(at, Due::Conn(key, conn.serial));
        }
        self.conns.insert(conn);
        debug!("{addr}: connection accepted");
        Some(key)
    }

    /// Reads from a connection into the broker's one shared read buffer,
    /// which the connection keeps only while a packet is incomplete: an
    /// idle connection holds no input buffer at all.
    pub fn read_conn(&mut self, key: ConnKey, input: &mut dyn Input) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.borrow_input(&mut self.scratch);
        }
        self.read_conn_into_buffer(key, input);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.return_input(&mut self.scratch);
            self.memory.recount(self.config.memory_limit, key, conn);
            let sid = conn.session();
            self.tidy_session(sid);
        }
    }

    fn read_conn_into_buffer(&mut self, key: ConnKey, input: &mut dyn Input) {
        let mut budget = READ_BUDGET;
        // Packets left in the buffer by flow control go first.
        if !self.process_input(key) {
            return;
        }
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.read_paused || conn.parked_bytes() >= self.config.max_outgoing_bytes {
                return;
            }
            if conn.out_len() > self.config.max_outgoing_bytes {
                // The client is not reading what we send: stop reading what
                // it sends until its output drains (see flush_dirty).
                conn.read_paused = true;
                return;
            }
            if !conn.input().is_empty() && self.guard.exhausted() && conn.level.is_none() {
                return; // no more reading until its CONNECT is handled
            }
            if budget == 0 {
                if !conn.read_pending {
                    conn.read_pending = true;
                    self.pending_reads.push(key);
                }
                return;
            }
            let wanted = protocol::bytes_wanted(conn.input());
            // A frame under way may have to wait for room in the budget
            // (a new one is charged once its header is in).
            let conn = if conn.input().is_empty() {
                conn
            } else if !self.recount(key) {
                if let Some(len) = self.never_fits(key) {
                    self.close(key, Reason::Decode(DecodeError::TooLarge(len)));
                }
                return;
            } else {
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                conn
            };
            match input.read_into(conn.rbuf(), wanted) {
                Ok(ReadOutcome::Data { n, drained }) => {
                    budget = budget.saturating_sub(n);
                    self.stats.bytes_received += n as u64;
                    if !self.process_input(key) {
                        return;
                    }
                    // A short read emptied the socket: more data will come
                    // with a new readiness edge, so the read that would
                    // only return WouldBlock is skipped (one syscall less
                    // per message at low rates). Not while the transport
                    // holds input no edge will announce, nor once a FIN
                    // was reported: its edge is spent, and EOF must be seen.
                    let Some(conn) = self.conns.get(key) else {
                        return;
                    };
                    if drained && !input.has_buffered_input() && !conn.peer_closed {
                        return;
                    }
                }
                Ok(ReadOutcome::WouldBlock) => return,
                Ok(ReadOutcome::Eof) => return self.close(key, Reason::Eof),
                Err(e) => return self.close(key, Reason::Io(e)),
            }
        }
    }

    /// Handles every complete packet in the read buffer. False if the
    /// connection was closed.
    pub(super) fn process_input(&mut self, key: ConnKey) -> bool {
        // The input leaves the connection while its packets are handled,
        // so a PUBLISH is routed from it in place (see `Routed`); what is
        // left of it goes back.
        let mut input = match self.conns.get_mut(key) {
            Some(conn) if !conn.input().is_empty() => std::mem::take(conn.rbuf()),
            Some(_) => return true,
            None => return false,
        };
        let mut used = 0;
        let open = self.handle_input(key, &input, &mut used);
        if let Some(conn) = self.conns.get_mut(key) {
            input.advance(used);
            *conn.rbuf() = input;
        }
        open
    }

    /// [`Engine::process_input`] on `input`, the connection's, from
    /// offset `used`, which it moves past each packet it takes.
    fn handle_input(&mut self, key: ConnKey, input: &[u8], used: &mut usize) -> bool {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return false;
            };
            if conn.parked_bytes() >= self.config.max_outgoing_bytes {
                return true; // flow control: the rest waits in rbuf
            }
            let rest = input.get(*used..).unwrap_or_default();
            if rest.is_empty() {
                return true;
            }
            let max = self.config.max_remaining_length();
            let (level, max) = match conn.level {
                Some(level) => (Some(level), max),
                None if self.guard.exhausted() => {
                    // This iteration's password hashing is spent: the
                    // CONNECT waits for the next one (read again then), so
                    // the other clients are served meanwhile.
                    if !conn.read_pending {
                        conn.read_pending = true;
                        self.pending_reads.push(key);
                    }
                    return true;
                }
                // An MQTT 5 client in an authentication exchange is not
                // connected yet but speaks version 5 (AUTH). Before
                // CONNECT, nothing longer than a CONNECT makes sense.
                None => (
                    conn.v5.as_ref().map(|_| ProtocolLevel::V5),
                    max.min(protocol::MAX_CONNECT_LENGTH),
                ),
            };
            let limits = Limits {
                max_remaining_length: max,
                mqtt5: true,
            };
            let (packet, len) = match protocol::decode_ref(rest, level, Role::Server, &limits) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => return true,
                Err(e) => {
                    self.close(key, Reason::Decode(e));
                    return false;
                }
            };
            *used += len;
            conn.last_rx = self.now_ms;
            let handled = match packet {
                PacketRef::Publish(p) if conn.blocked => {
                    conn.park(p.into_publish());
                    match conn.session() {
                        Some(sid) => self.check_receive_maximum(key, sid),
                        None => Ok(()),
                    }
                }
                packet => {
                    let before = self.store_appended();
                    let handled = self.handle_ref(key, packet);
                    if handled.is_ok() {
                        self.hold_output(key, before);
                    }
                    handled
                }
            };
            if let Err(reason) = handled {
                self.close(key, reason);
                return false;
            }
        }
    }

    /// Writes every connection with pending output, once each; refills
    /// from session queues as output drains.
    ///
    /// The one place where the rule "nothing leaves before the records it
    /// depends on are durable" is enforced: output marked `held` (an
    /// acknowledgement, or a persistent session's PUBLISH or PUBREL) is
    /// written only once the store holds the records it depends on
    /// durably. Records added during a pass (refills from queues,
    /// publishers woken by them) wait for the next pass's commit. While
    /// the store fails, held connections wait (and are not read, so they
    /// add no more records) until it recovers; the others go on.
    pub fn flush_dirty(&mut self, out: &mut dyn Output) {
        self.close_stalled();
        loop {
            self.commit_store();
            if self.store_durable() {
                self.dirty.append(&mut self.held);
            }
            if self.dirty.is_empty() {
                break;
            }
            let failing = self.store.as_ref().is_some_and(Store::is_failing);
            let batch = std::mem::take(&mut self.dirty);
            for &key in &batch {
                let releasable = self.releasable(key);
                let Some(conn) = self.conns.get_mut(key) else {
                    continue;
                };
                if !conn.dirty {
                    continue;
                }
                if !releasable {
                    conn.read_paused |= failing;
                    self.held.push(key);
                    continue;
                }
                conn.held = false;
                conn.dirty = false;
                let before = conn.out_len();
                let result = conn.flush(key, out);
                self.stats.bytes_sent += (before - conn.out_len()) as u64;
                self.memory.recount(self.config.memory_limit, key, conn);
                match result {
                    Err(e) => self.close(key, Reason::Io(e)),
                    Ok(_) if conn.out_len() < self.config.max_outgoing_bytes => {
                        if conn.read_paused {
                            conn.read_paused = false;
                            if !conn.read_pending {
                                conn.read_pending = true;
                                self.pending_reads.push(key);
                            }
                        }
                        if let Some(sid) = conn.session() {
                            self.pump(sid);
                            self.tidy_session(Some(sid));
                        }
                    }
                    Ok(_) => {}
                }
            }
        }
    }

    pub(super) fn close(&mut self, key: ConnKey, reason: Reason) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        self.release(&conn);
        if let Some(clients) = self.listener_clients.get_mut(usize::from(conn.listener)) {
            *clients = clients.saturating_sub(1);
        }
        if conn.timer_at().is_some() {
            self.forget_timer();
        }
        self.auth_exchanges.remove(&key);
        // The client's id and user name live in its session, which a clean
        // session's close removes below.
        let (client_id, username) = self.identity(&conn);
        let who = match &client_id {
            Some(id) => format!("{} ({id})", conn.addr),
            None => conn.addr.to_string(),
        };
        match &reason {
            Reason::Decode(_)
            | Reason::ProtocolError(_)
            | Reason::Internal(_)
            | Reason::Stalled(_) => {
                warn!("{who}: closed: {reason}")
            }
            // A refusal was logged, with the client id, by `refuse`.
            Reason::Shutdown | Reason::Refused(_) => debug!("{who}: closed: {reason}"),
            _ => info!("{who}: closed: {reason}"),
        }
        // Last chance for what is queued (a refusing CONNACK, say): the
        // loop writes it before closing the socket.
        let graceful = !matches!(reason, Reason::Io(_));
        let mut last = bytes::BytesMut::new();
        if graceful {
            self.send_disconnect(&mut conn, &reason);
            self.commit_store();
            // Held output (acknowledging what is not stored) is dropped.
            if !conn.held || self.store.as_ref().is_none_or(|s| s.covers(conn.held_at)) {
                last = conn.take_output();
            }
        }
        self.closed.push(Closed {
            key,
            last,
            graceful,
        });
        let (Some(sid), Some(client_id)) = (conn.session(), client_id) else {
            return;
        };
        self.stats.clients_connected = self.stats.clients_connected.saturating_sub(1);
        let clean = match self.sessions.get_mut(sid) {
            Some(sess) => {
                sess.set_conn(None);
                sess.offline_since = Some(self.now_ms);
                sess.clean
            }
            None => true,
        };
        self.wake_waiters(sid);
        // A session that ends below hands its shared messages over then;
        // one taken over is back at once, and at shutdown all are leaving.
        if !clean && !matches!(reason, Reason::TakenOver | Reason::Shutdown) {
            self.hand_over_at_disconnect(sid);
        }
        self.tidy_session(Some(sid));
        // [MQTT-3.1.2-8]: published when the connection ends without
        // DISCONNECT, then gone [MQTT-3.1.2-10]; MQTT 5 may delay it.
        if let Some(will) = conn.will.take().map(|w| *w) {
            self.will_at_close(sid, will);
        }
        self.schedule_session_end(sid);
        if self.on_event.is_some() {
            let text = reason.to_string();
            self.emit(Event::Disconnected {
                client_id: &client_id,
                addr: conn.addr,
                username: username.as_deref(),
                reason: &text,
            });
        }
        if clean {
            self.drop_session(sid);
        }
    }

    /// The client id and user name of a connection's session (none before
    /// CONNECT is accepted).
    pub(super) fn identity(&self, conn: &Conn) -> (Option<Box<str>>, Option<Box<str>>) {
        match conn.session().and_then(|sid| self.sessions.get(sid)) {
            Some(s) => (Some(s.client_id.clone()), s.username.clone()),
            None => (None, None),
        }
    }

    /// Shutdown: publish the Wills of connected clients (the server closes
    /// their connections without DISCONNECT), let the output go, close all.
    pub(super) fn close_all(&mut self, out: &mut dyn Output) {
        let keys: Vec<ConnKey> = self.conns.keys().collect();
        for &key in &keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let Some(will) = conn.will.take().map(|w| *w) else {
                continue;
            };
            let Some(conn) = self.conns.get(key) else {
                continue;
            };
            let (Some(id), user) = self.identity(conn) else {
                continue;
            };
            if self.allowed(&id, user.as_deref(), Access::Publish, &will.topic) {
                let source = Source {
                    client_id: id,
                    username: user,
                };
                self.publish_will(will, Some(source));
            }
        }
        // Wills still waiting for their delay go too: nothing keeps them
        // past this process.
        let delayed: Vec<SessionKey> = self.delayed_wills.keys().copied().collect();
        for sid in delayed {
            self.publish_delayed_will(sid);
        }
        self.flush_dirty(out);
        for key in keys {
            self.close(key, Reason::Shutdown);
        }
        info!("broker stopped");
    }
}
